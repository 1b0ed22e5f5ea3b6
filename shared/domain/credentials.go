package domain

import (
	"fmt"
	"strings"
)

// A model's credential_ref names where its upstream API key is, never the key itself; see
// shared/secrets for why the forms are narrow. The API applies CredentialPolicy when a model is
// stored; the resolver applies it again when a request runs.

// CredentialEnvPrefix is the one prefix an env: reference may name. Declared here only; the local
// stack and the documentation name their upstream keys with it.
const CredentialEnvPrefix = "FUSILLADE_UPSTREAM_KEY_"

// CredentialKind is the form of a credential reference (Model.CredentialRef).
type CredentialKind int

// The forms of a reference.
const (
	CredentialNone   CredentialKind = iota // "": no credential
	CredentialEnv                          // env:FUSILLADE_UPSTREAM_KEY_<NAME>
	CredentialSecret                       // a Secrets Manager ARN under the upstream-secret prefix
)

// CredentialRef is a parsed reference: Name is the environment variable or the secret's ARN.
type CredentialRef struct {
	Kind CredentialKind
	Name string
}

// CredentialPolicy decides which references are allowed.
type CredentialPolicy struct {
	// ARNPrefix is what every Secrets Manager reference must start with (UPSTREAM_SECRET_ARN_PREFIX
	// without its trailing IAM wildcard). Empty, the default, allows no ARN at all.
	ARNPrefix string
}

// Parse checks ref against the allowed forms. The error is a *Error naming the forms; it
// never contains ref, which may be a secret pasted by mistake.
func (p CredentialPolicy) Parse(ref string) (CredentialRef, error) {
	if ref == "" {
		return CredentialRef{Kind: CredentialNone}, nil
	}
	if name, ok := strings.CutPrefix(ref, "env:"); ok {
		if rest, ok := strings.CutPrefix(name, CredentialEnvPrefix); ok && rest != "" && onlyRunes(rest, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") {
			return CredentialRef{Kind: CredentialEnv, Name: name}, nil
		}
		return CredentialRef{}, p.refused()
	}
	if p.ARNPrefix != "" {
		// The characters Secrets Manager allows in a secret name, plus the "-" of its suffix.
		if rest, ok := strings.CutPrefix(ref, p.ARNPrefix); ok && rest != "" &&
			onlyRunes(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_+=.@-") {
			return CredentialRef{Kind: CredentialSecret, Name: ref}, nil
		}
	}
	return CredentialRef{}, p.refused()
}

// Forms describes the allowed references, for error messages.
func (p CredentialPolicy) Forms() string {
	env := fmt.Sprintf(`"env:%s<NAME>" (NAME of A-Z, 0-9 and _)`, CredentialEnvPrefix)
	if p.ARNPrefix == "" {
		return fmt.Sprintf(`credential_ref must be "" (no credential) or %s; Secrets Manager ARNs are refused because UPSTREAM_SECRET_ARN_PREFIX is not set. It holds a reference, never the secret itself.`, env)
	}
	return fmt.Sprintf(`credential_ref must be "" (no credential), %s or a Secrets Manager ARN starting with %q. It holds a reference, never the secret itself.`, env, p.ARNPrefix)
}

func (p CredentialPolicy) refused() *Error {
	return &Error{Code: EInvalid, Param: "credential_ref", Reason: CodeCredentialRefNotAllowed, Message: p.Forms()}
}

func onlyRunes(s, allowed string) bool {
	for _, r := range s {
		if !strings.ContainsRune(allowed, r) {
			return false
		}
	}
	return true
}
