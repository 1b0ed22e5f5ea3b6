package samtemplate

// Readers of the converted template's values, shared by Settings and the template checks.

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

const (
	functionType = "AWS::Serverless::Function"
	queueType    = "AWS::SQS::Queue"
)

// ---------------------------------------------------------------- value helpers

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// asList returns v as a list; a lone value counts as a list of one, as CloudFormation allows for
// Action, Resource and Policies.
func asList(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	}
	return []any{v}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m := asMap(v)
		if m == nil {
			return nil
		}
		v = m[p]
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// literalInt reads an integer written as a YAML number or a numeric string.
func literalInt(v any) (int, bool) {
	switch x := v.(type) {
	case int:
		return x, true
	case int64:
		return int(x), true
	case uint64:
		return int(x), true
	case float64:
		if x == float64(int(x)) {
			return int(x), true
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, true
		}
	}
	return 0, false
}

// intValue resolves an integer property: a literal, or a Ref to a parameter, read as its Default.
func intValue(tpl map[string]any, v any) (int, bool) {
	if name, ok := refName(v); ok {
		p := asMap(dig(tpl, "Parameters", name))
		if p == nil {
			return 0, false
		}
		return literalInt(p["Default"])
	}
	return literalInt(v)
}

func refName(v any) (string, bool) {
	m := asMap(v)
	if len(m) != 1 {
		return "", false
	}
	s, ok := m["Ref"].(string)
	return s, ok
}

// getAtt returns the resource and attribute of an Fn::GetAtt.
func getAtt(v any) (res, attr string, ok bool) {
	m := asMap(v)
	if len(m) != 1 {
		return "", "", false
	}
	l, _ := m["Fn::GetAtt"].([]any)
	if len(l) != 2 {
		return "", "", false
	}
	res, ok1 := l[0].(string)
	attr, ok2 := l[1].(string)
	return res, attr, ok1 && ok2
}

// ---------------------------------------------------------------- template helpers

func resources(tpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range asMap(tpl["Resources"]) {
		out[id] = asMap(r)
	}
	return out
}

func functions(tpl map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range resources(tpl) {
		if r["Type"] == functionType {
			out[id] = r
		}
	}
	return out
}

// fnProp is a function's property, falling back to Globals.Function as SAM does.
func fnProp(tpl map[string]any, id, key string) any {
	if v, ok := asMap(dig(tpl, "Resources", id, "Properties"))[key]; ok {
		return v
	}
	return dig(tpl, "Globals", "Function", key)
}

// fnTimeout is a function's Timeout in seconds; Lambda's default is 3.
func fnTimeout(tpl map[string]any, id string) (int, bool) {
	v := fnProp(tpl, id, "Timeout")
	if v == nil {
		return 3, true
	}
	return intValue(tpl, v)
}

func events(fn map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, e := range asMap(dig(fn, "Properties", "Events")) {
		out[name] = asMap(e)
	}
	return out
}
