// Package samtemplate loads a CloudFormation / SAM template written in YAML into plain Go values
// (map[string]any, []any, string, int, float64, bool, nil), with the short-form intrinsic
// function tags (!Ref, !GetAtt, !Sub, ...) rewritten to their long JSON forms ({"Ref": ...},
// {"Fn::GetAtt": [...]}, ...). The result has the shape CloudFormation itself sees, so tests can
// inspect every property of the template, including those that typed template libraries drop
// (such as an SQS event's ScalingConfig and FunctionResponseTypes).
package samtemplate

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// fnTags are the short-form tags written as {"Fn::<Name>": value}.
var fnTags = map[string]bool{
	"And": true, "Base64": true, "Cidr": true, "Equals": true, "FindInMap": true, "GetAZs": true,
	"If": true, "ImportValue": true, "Join": true, "Length": true, "Not": true, "Or": true,
	"Select": true, "Split": true, "Sub": true, "ToJsonString": true, "Transform": true,
}

// Load reads and converts the template at path.
func Load(path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tpl, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tpl, nil
}

// Parse converts a YAML template. The document must be a mapping.
func Parse(data []byte) (map[string]any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, errors.New("empty template")
	}
	v, err := convert(doc.Content[0])
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("line %d: the template is not a mapping", doc.Content[0].Line)
	}
	return m, nil
}

func convert(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return convert(n.Alias)
	}
	tag := n.Tag
	if strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return convertIntrinsic(n, tag[1:])
	}
	return convertPlain(n)
}

// convertPlain converts a node whose tag is a standard YAML one (explicit or resolved).
func convertPlain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return convertMapping(n)
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := convert(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!binary":
			return n.Value, nil
		case "!!timestamp":
			// CloudFormation has no timestamps: an unquoted date (2010-09-09) is a string to it.
			return n.Value, nil
		case "!!null":
			return nil, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
}

func convertMapping(n *yaml.Node) (map[string]any, error) {
	out := make(map[string]any, len(n.Content)/2)
	// Keys set explicitly win over merged ones (<<), whatever their order, as YAML specifies.
	explicit := map[string]bool{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, vn := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: mapping keys must be scalars", k.Line)
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		if explicit[k.Value] {
			// CloudFormation rejects duplicate keys; a YAML decoder would keep the last silently.
			return nil, fmt.Errorf("line %d: duplicate key %q", k.Line, k.Value)
		}
		explicit[k.Value] = true
		v, err := convert(vn)
		if err != nil {
			return nil, err
		}
		out[k.Value] = v
	}
	for _, m := range merges {
		srcs := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, s := range srcs {
			v, err := convert(s)
			if err != nil {
				return nil, err
			}
			mm, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("line %d: a merge (<<) needs a mapping", s.Line)
			}
			for k, v := range mm {
				if _, set := out[k]; !set {
					out[k] = v
				}
			}
		}
	}
	return out, nil
}

// convertIntrinsic rewrites one short-form tag to its long form.
func convertIntrinsic(n *yaml.Node, name string) (any, error) {
	// The tagged value itself, converted as if it had no tag.
	inner := *n
	inner.Tag = ""
	inner.Style &^= yaml.TaggedStyle
	switch name {
	case "Ref", "Condition":
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: !%s takes a name", n.Line, name)
		}
		return map[string]any{name: n.Value}, nil
	case "GetAtt":
		switch n.Kind {
		case yaml.ScalarNode:
			res, attr, ok := strings.Cut(n.Value, ".")
			if !ok || res == "" || attr == "" {
				return nil, fmt.Errorf("line %d: !GetAtt %q is not Resource.Attribute", n.Line, n.Value)
			}
			return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
		case yaml.SequenceNode:
			v, err := convertPlain(&inner)
			if err != nil {
				return nil, err
			}
			if len(v.([]any)) != 2 {
				return nil, fmt.Errorf("line %d: !GetAtt takes [Resource, Attribute]", n.Line)
			}
			return map[string]any{"Fn::GetAtt": v}, nil
		}
		return nil, fmt.Errorf("line %d: !GetAtt takes Resource.Attribute or [Resource, Attribute]", n.Line)
	}
	if !fnTags[name] {
		return nil, fmt.Errorf("line %d: unknown tag !%s", n.Line, name)
	}
	var v any
	if n.Kind == yaml.ScalarNode {
		// Scalar arguments (!Sub "...", !GetAZs "", !Base64 ...) are strings to CloudFormation.
		v = n.Value
	} else {
		var err error
		if v, err = convertPlain(&inner); err != nil {
			return nil, err
		}
	}
	return map[string]any{"Fn::" + name: v}, nil
}
