package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/fusillade/fusillade/local/stack"
)

// modelsFile is the shape of --models-file: real upstreams to configure at start.
//
//	models:
//	  - name: llama-3.1-8b                  # the "model" of the input lines
//	    base_url: http://127.0.0.1:8000     # without /v1: the line's url is appended
//	    limit: 16                           # global concurrency limit
//	  - name: gpt-4o-mini
//	    base_url: https://api.openai.com
//	    credential_ref: env:FUSILLADE_UPSTREAM_KEY_OPENAI
//	    limit: 8
//	    escalation: gpt-4o                  # optional: takes over near the deadline
//	    escalation_threshold: 900           # seconds; default 900
type modelsFile struct {
	Models []struct {
		Name                string `yaml:"name"`
		BaseURL             string `yaml:"base_url"`
		CredentialRef       string `yaml:"credential_ref"`
		Limit               *int   `yaml:"limit"`
		Escalation          string `yaml:"escalation"`
		EscalationThreshold int    `yaml:"escalation_threshold"`
	} `yaml:"models"`
}

// readModelsFile parses a --models-file.
func readModelsFile(path string) ([]stack.ModelSpec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--models-file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var f modelsFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--models-file %s: %w", path, err)
	}
	var out []stack.ModelSpec
	for i, m := range f.Models {
		if m.Limit == nil {
			return nil, fmt.Errorf("--models-file %s: model %d (%q) has no limit", path, i+1, m.Name)
		}
		spec := stack.ModelSpec{Name: m.Name, BaseURL: m.BaseURL, CredentialRef: m.CredentialRef, Limit: *m.Limit,
			EscalationModel: m.Escalation, EscalationThreshold: m.EscalationThreshold}
		if err := checkUpstream(spec); err != nil {
			return nil, fmt.Errorf("--models-file %s: model %d: %w", path, i+1, err)
		}
		out = append(out, spec)
	}
	return out, nil
}

// parseUpstream parses one --upstream value: NAME=BASE_URL followed by optional
// key=REF, limit=N (default 8), escalation=MODEL and escalation_threshold=SECONDS, comma-separated.
func parseUpstream(s string) (stack.ModelSpec, error) {
	parts := strings.Split(s, ",")
	name, base, ok := strings.Cut(strings.TrimSpace(parts[0]), "=")
	if !ok {
		return stack.ModelSpec{}, fmt.Errorf("--upstream %q: want NAME=BASE_URL[,key=env:VAR][,limit=N]", s)
	}
	spec := stack.ModelSpec{Name: name, BaseURL: base, Limit: 8}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		var err error
		switch {
		case !ok:
			err = fmt.Errorf("%q is not key=value", p)
		case k == "key":
			spec.CredentialRef = v
		case k == "limit":
			spec.Limit, err = strconv.Atoi(v)
		case k == "escalation":
			spec.EscalationModel = v
		case k == "escalation_threshold":
			spec.EscalationThreshold, err = strconv.Atoi(v)
		default:
			err = fmt.Errorf("unknown setting %q (want key, limit, escalation, escalation_threshold)", k)
		}
		if err != nil {
			return stack.ModelSpec{}, fmt.Errorf("--upstream %q: %w", s, err)
		}
	}
	if err := checkUpstream(spec); err != nil {
		return stack.ModelSpec{}, fmt.Errorf("--upstream %q: %w", s, err)
	}
	return spec, nil
}

func checkUpstream(m stack.ModelSpec) error {
	if m.Name == "" {
		return errors.New("name is required")
	}
	u, err := url.Parse(m.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("model %s: base URL %q is not an http(s) URL", m.Name, m.BaseURL)
	}
	if m.Limit < 0 || m.EscalationThreshold < 0 {
		return fmt.Errorf("model %s: limit and escalation threshold must not be negative", m.Name)
	}
	return nil
}
