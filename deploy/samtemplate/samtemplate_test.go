package samtemplate

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseShortTags(t *testing.T) {
	t.Parallel()
	src := `
AWSTemplateFormatVersion: 2010-09-09
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition IsProd, !Or [!Condition NotProd, !Condition IsProd]]
Resources:
  Q:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 5400
      FifoQueue: false
      Ratio: 0.5
      Nothing: ~
      Arn: !GetAtt Dlq.Arn
      ArnList: !GetAtt [Dlq, QueueName]
      Nested: !GetAtt Stack.Outputs.Name
      Url: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com"
      SubList: !Sub ["${A}-x", {A: !Ref B}]
      Joined: !Join [",", [a, b]]
      First: !Select [0, !GetAZs ""]
      Parts: !Split [",", "a,b"]
      Maybe: !If [IsProd, !Ref AWS::NoValue, 3]
      Mapped: !FindInMap [M, !Ref AWS::Region, Key]
      Encoded: !Base64 hello
      Blocks: !Cidr [10.0.0.0/16, 4, 8]
      Imported: !ImportValue shared-vpc
`
	tpl, err := Parse([]byte(src))
	require.NoError(t, err)

	assert.Equal(t, "2010-09-09", tpl["AWSTemplateFormatVersion"], "an unquoted date stays a string")
	assert.Equal(t, map[string]any{
		"IsProd":  map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "Stage"}, "prod"}},
		"NotProd": map[string]any{"Fn::Not": []any{map[string]any{"Condition": "IsProd"}}},
		"Both": map[string]any{"Fn::And": []any{
			map[string]any{"Condition": "IsProd"},
			map[string]any{"Fn::Or": []any{map[string]any{"Condition": "NotProd"}, map[string]any{"Condition": "IsProd"}}},
		}},
	}, tpl["Conditions"])

	props := tpl["Resources"].(map[string]any)["Q"].(map[string]any)["Properties"].(map[string]any)
	want := map[string]any{
		"VisibilityTimeout": 5400,
		"FifoQueue":         false,
		"Ratio":             0.5,
		"Nothing":           nil,
		"Arn":               map[string]any{"Fn::GetAtt": []any{"Dlq", "Arn"}},
		"ArnList":           map[string]any{"Fn::GetAtt": []any{"Dlq", "QueueName"}},
		"Nested":            map[string]any{"Fn::GetAtt": []any{"Stack", "Outputs.Name"}},
		"Url":               map[string]any{"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com"},
		"SubList":           map[string]any{"Fn::Sub": []any{"${A}-x", map[string]any{"A": map[string]any{"Ref": "B"}}}},
		"Joined":            map[string]any{"Fn::Join": []any{",", []any{"a", "b"}}},
		"First":             map[string]any{"Fn::Select": []any{0, map[string]any{"Fn::GetAZs": ""}}},
		"Parts":             map[string]any{"Fn::Split": []any{",", "a,b"}},
		"Maybe":             map[string]any{"Fn::If": []any{"IsProd", map[string]any{"Ref": "AWS::NoValue"}, 3}},
		"Mapped":            map[string]any{"Fn::FindInMap": []any{"M", map[string]any{"Ref": "AWS::Region"}, "Key"}},
		"Encoded":           map[string]any{"Fn::Base64": "hello"},
		"Blocks":            map[string]any{"Fn::Cidr": []any{"10.0.0.0/16", 4, 8}},
		"Imported":          map[string]any{"Fn::ImportValue": "shared-vpc"},
	}
	assert.Equal(t, want, props)
}

func TestParseAnchorsAndMerge(t *testing.T) {
	t.Parallel()
	tpl, err := Parse([]byte(`
Base: &base {Timeout: 30, MemorySize: 256}
Fn:
  <<: *base
  Timeout: 900
Alias: *base
`))
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"Timeout": 900, "MemorySize": 256}, tpl["Fn"], "explicit keys win over merged ones")
	assert.Equal(t, map[string]any{"Timeout": 30, "MemorySize": 256}, tpl["Alias"])
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for name, src := range map[string]string{
		"unknown tag":          "A: !Reff X\n",
		"GetAtt without attr":  "A: !GetAtt Bucket\n",
		"GetAtt list of three": "A: !GetAtt [a, b, c]\n",
		"Ref of a list":        "A: !Ref [a]\n",
		"duplicate key":        "A: 1\nA: 2\n",
		"not a mapping":        "- a\n",
		"empty":                "",
		"invalid yaml":         "A: [\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(src))
			assert.Error(t, err)
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("A: !Nope x\n"), 0o600))
	_, err := Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.yaml")
	assert.Contains(t, err.Error(), "!Nope")

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
