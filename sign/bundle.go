// Package sign implements OpenSSF Model Signing (OMS) v1.0 signing and
// verification of a model file or folder: a per-file SHA-256 manifest in an
// in-toto Statement v1, signed as a DSSE envelope and wrapped in a Sigstore
// bundle (JSON).
//
// The bundle, envelope and statement are small JSON documents, so they are
// written as plain Go structs here instead of pulling in the Sigstore
// protobuf tree; the field names follow the protojson (camelCase) encoding
// that Sigstore clients read and write.
package sign

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Constants fixed by the OMS, in-toto, DSSE and Sigstore specifications.
const (
	// BundleMediaType is the Sigstore bundle media type we produce (the one
	// the OMS v1.0 test vectors use).
	BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// bundleMediaTypePrefix is what the OMS bundle schema accepts.
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// PayloadType is the DSSE payload type for in-toto statements.
	PayloadType = "application/vnd.in-toto+json"
	// StatementType is the in-toto Statement v1 _type.
	StatementType = "https://in-toto.io/Statement/v1"
	// PredicateType is the OMS v1.0 predicate type.
	PredicateType = "https://model_signing/signature/v1.0"
)

// ErrInvalidBundle wraps every structural rejection of a bundle, so callers
// can tell "this is not a valid OMS bundle" from I/O errors.
var ErrInvalidBundle = errors.New("invalid OMS bundle")

// Bundle is a Sigstore bundle as JSON. Only the three fields the OMS schema
// allows at the top level exist, so marshalling never adds others.
type Bundle struct {
	MediaType            string                `json:"mediaType"`
	VerificationMaterial *VerificationMaterial `json:"verificationMaterial"`
	DSSEEnvelope         *Envelope             `json:"dsseEnvelope"`
}

// VerificationMaterial holds exactly one of PublicKey (key method),
// X509CertificateChain (certificate method) or Certificate (sigstore).
// Transparency-log and timestamp data are kept raw: we do not verify them.
type VerificationMaterial struct {
	PublicKey                 *PublicKeyIdentifier  `json:"publicKey,omitempty"`
	X509CertificateChain      *X509CertificateChain `json:"x509CertificateChain,omitempty"`
	Certificate               *X509Certificate      `json:"certificate,omitempty"`
	TlogEntries               []json.RawMessage     `json:"tlogEntries,omitempty"`
	TimestampVerificationData json.RawMessage       `json:"timestampVerificationData,omitempty"`
}

// PublicKeyIdentifier identifies the verification key. Producers set Hint;
// pre-v1.1.0 bundles carried RawBytes instead.
type PublicKeyIdentifier struct {
	Hint     string `json:"hint,omitempty"`
	RawBytes string `json:"rawBytes,omitempty"`
}

// X509CertificateChain is the leaf certificate followed by its CA chain.
type X509CertificateChain struct {
	Certificates []X509Certificate `json:"certificates"`
}

// X509Certificate is one base64 DER certificate.
type X509Certificate struct {
	RawBytes string `json:"rawBytes"`
}

// Envelope is a DSSE envelope.
type Envelope struct {
	Payload     string      `json:"payload"`
	PayloadType string      `json:"payloadType"`
	Signatures  []Signature `json:"signatures"`
}

// Signature is one DSSE signature. KeyID is a pointer because verifiers must
// accept it absent, "" or null; we omit it when producing.
type Signature struct {
	Sig   string  `json:"sig"`
	KeyID *string `json:"keyid,omitempty"`
}

// Statement is an in-toto Statement v1 carrying the OMS predicate.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is the model as a whole: its basename and root digest.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is the OMS predicate body.
type Predicate struct {
	Resources     []Resource    `json:"resources"`
	Serialization Serialization `json:"serialization"`
}

// Resource is one file of the manifest.
type Resource struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	Algorithm string `json:"algorithm"`
}

// Serialization records how the files were enumerated and hashed.
// AllowSymlinks is a pointer so that parsing can tell "false" from "absent"
// (the field is required).
type Serialization struct {
	Method        string   `json:"method"`
	HashType      string   `json:"hash_type"`
	ShardSize     *int64   `json:"shard_size,omitempty"`
	AllowSymlinks *bool    `json:"allow_symlinks"`
	IgnorePaths   []string `json:"ignore_paths,omitempty"`
}

// Method names the signing method implied by the verification material.
func (vm *VerificationMaterial) Method() string {
	switch {
	case vm.PublicKey != nil:
		return "key"
	case vm.X509CertificateChain != nil:
		return "certificate"
	case vm.Certificate != nil:
		return "sigstore"
	}
	return ""
}

// Parsed is a bundle with its decoded payload.
type Parsed struct {
	Bundle    Bundle
	Payload   []byte    // the raw DSSE payload (what the signature covers, with the type)
	Statement Statement // the decoded, validated statement
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidBundle, fmt.Sprintf(format, args...))
}

// ParseBundle decodes an OMS bundle and checks it structurally: bundle →
// envelope → statement → predicate, following the required fields and
// constraints of the OMS v1.0 JSON schemas. It does not verify signatures.
func ParseBundle(b []byte) (*Parsed, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, invalid("empty bundle")
	}
	var p Parsed
	if err := json.Unmarshal(b, &p.Bundle); err != nil {
		return nil, invalid("bundle is not valid JSON: %v", err)
	}
	bu := &p.Bundle
	if bu.MediaType == "" {
		return nil, invalid("missing mediaType")
	}
	if !strings.HasPrefix(bu.MediaType, bundleMediaTypePrefix) {
		return nil, invalid("unsupported mediaType %q", bu.MediaType)
	}
	if err := checkVerificationMaterial(bu.VerificationMaterial); err != nil {
		return nil, err
	}
	payload, err := checkEnvelope(bu.DSSEEnvelope)
	if err != nil {
		return nil, err
	}
	p.Payload = payload
	st, err := ParseStatement(payload)
	if err != nil {
		return nil, err
	}
	p.Statement = *st
	return &p, nil
}

func checkVerificationMaterial(vm *VerificationMaterial) error {
	if vm == nil {
		return invalid("missing verificationMaterial")
	}
	switch vm.Method() {
	case "key":
		if vm.PublicKey.Hint == "" && vm.PublicKey.RawBytes == "" {
			return invalid("verificationMaterial.publicKey has neither hint nor rawBytes")
		}
	case "certificate":
		if len(vm.X509CertificateChain.Certificates) == 0 {
			return invalid("verificationMaterial.x509CertificateChain has no certificates")
		}
		for i, c := range vm.X509CertificateChain.Certificates {
			if c.RawBytes == "" {
				return invalid("verificationMaterial.x509CertificateChain.certificates[%d] has no rawBytes", i)
			}
		}
	case "sigstore":
		if vm.Certificate.RawBytes == "" {
			return invalid("verificationMaterial.certificate has no rawBytes")
		}
		// Keyless signing is only meaningful with a transparency log entry.
		if len(vm.TlogEntries) == 0 {
			return invalid("sigstore bundle (verificationMaterial.certificate) is missing tlogEntries")
		}
	default:
		return invalid("verificationMaterial has no publicKey, x509CertificateChain or certificate")
	}
	return nil
}

// checkEnvelope validates the DSSE envelope and returns the decoded payload.
func checkEnvelope(env *Envelope) ([]byte, error) {
	if env == nil {
		return nil, invalid("missing dsseEnvelope")
	}
	if env.PayloadType != PayloadType {
		return nil, invalid("dsseEnvelope.payloadType is %q, want %q", env.PayloadType, PayloadType)
	}
	if env.Payload == "" {
		return nil, invalid("dsseEnvelope.payload is empty")
	}
	if len(env.Signatures) == 0 {
		return nil, invalid("dsseEnvelope has no signatures")
	}
	for i, s := range env.Signatures {
		if s.Sig == "" {
			return nil, invalid("dsseEnvelope.signatures[%d].sig is empty", i)
		}
	}
	payload, err := decodeB64(env.Payload)
	if err != nil {
		return nil, invalid("dsseEnvelope.payload is not base64: %v", err)
	}
	return payload, nil
}

// decodeB64 accepts standard base64 with or without padding, and the URL
// alphabet, because DSSE allows either encoding.
func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not standard or URL-safe base64")
}

var hashTypes = map[string]bool{"sha256": true, "blake2b": true, "blake3": true}

func isLowerHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseStatement decodes a DSSE payload as an OMS in-toto statement and
// checks the constraints of statement.schema.json and predicate.schema.json
// plus the spec rules the schemas cannot express (at least one resource,
// sorted unique names).
func ParseStatement(payload []byte) (*Statement, error) {
	var st Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, invalid("payload is not an in-toto statement: %v", err)
	}
	if err := checkKeys(payload); err != nil {
		return nil, err
	}
	if st.Type != StatementType {
		return nil, invalid("statement _type is %q, want %q", st.Type, StatementType)
	}
	if st.PredicateType != PredicateType {
		return nil, invalid("unsupported predicateType %q, want %q", st.PredicateType, PredicateType)
	}
	if len(st.Subject) != 1 {
		return nil, invalid("statement must have exactly one subject, has %d", len(st.Subject))
	}
	sub := st.Subject[0]
	if sub.Name == "" {
		return nil, invalid("subject name is empty")
	}
	if len(sub.Digest) == 0 {
		return nil, invalid("subject has no digest")
	}
	for alg, d := range sub.Digest {
		if !isLowerHex(d) {
			return nil, invalid("subject digest %s is not lowercase hex", alg)
		}
	}
	ser := st.Predicate.Serialization
	switch ser.Method {
	case "files":
		if ser.ShardSize != nil {
			return nil, invalid("serialization.shard_size must be absent for method files")
		}
	case "shards":
		if ser.ShardSize == nil || *ser.ShardSize <= 0 {
			return nil, invalid("serialization.shard_size must be a positive integer for method shards")
		}
	case "":
		return nil, invalid("predicate is missing serialization.method")
	default:
		return nil, invalid("unknown serialization.method %q", ser.Method)
	}
	if !hashTypes[ser.HashType] {
		return nil, invalid("unknown serialization.hash_type %q", ser.HashType)
	}
	if ser.AllowSymlinks == nil {
		return nil, invalid("predicate is missing serialization.allow_symlinks")
	}
	for i, p := range ser.IgnorePaths {
		if p == "" {
			return nil, invalid("serialization.ignore_paths[%d] is empty", i)
		}
	}
	res := st.Predicate.Resources
	if len(res) == 0 {
		return nil, invalid("predicate has no resources")
	}
	for i, r := range res {
		if r.Name == "" {
			return nil, invalid("resources[%d] has no name", i)
		}
		if !isLowerHex(r.Digest) {
			return nil, invalid("resources[%d] (%s) digest is not lowercase hex", i, r.Name)
		}
		if !hashTypes[r.Algorithm] {
			return nil, invalid("resources[%d] (%s) has unknown algorithm %q", i, r.Name, r.Algorithm)
		}
		if r.Algorithm != ser.HashType {
			return nil, invalid("resources[%d] (%s) algorithm %q differs from hash_type %q", i, r.Name, r.Algorithm, ser.HashType)
		}
		// Sorted, unique names make the manifest (and root digest) canonical.
		if i > 0 && res[i-1].Name >= r.Name {
			return nil, invalid("resources are not sorted by unique name (%q before %q)", res[i-1].Name, r.Name)
		}
	}
	return &st, nil
}

// RootDigest is the OMS root digest: SHA-256 over the concatenated raw
// bytes of the resource digests, in manifest order.
func RootDigest(res []Resource) (string, error) {
	h := newSHA256()
	for _, r := range res {
		raw, err := hex.DecodeString(r.Digest)
		if err != nil {
			return "", fmt.Errorf("resource %s: digest is not hex: %w", r.Name, err)
		}
		h.Write(raw)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkKeys enforces the schemas' additionalProperties:false on the
// statement, the predicate and serialization (encoding/json would silently
// drop unknown keys, and a misspelt key must not pass as absent).
func checkKeys(payload []byte) error {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(payload, &st); err != nil {
		return invalid("payload is not a JSON object: %v", err)
	}
	if err := onlyKeys("statement", st, "_type", "subject", "predicateType", "predicate"); err != nil {
		return err
	}
	if st["predicate"] == nil {
		return invalid("statement is missing predicate")
	}
	var pred map[string]json.RawMessage
	if err := json.Unmarshal(st["predicate"], &pred); err != nil {
		return invalid("predicate is not a JSON object: %v", err)
	}
	if err := onlyKeys("predicate", pred, "resources", "serialization"); err != nil {
		return err
	}
	if pred["serialization"] == nil {
		return invalid("predicate is missing serialization")
	}
	var ser map[string]json.RawMessage
	if err := json.Unmarshal(pred["serialization"], &ser); err != nil {
		return invalid("serialization is not a JSON object: %v", err)
	}
	return onlyKeys("serialization", ser, "method", "hash_type", "shard_size", "allow_symlinks", "ignore_paths")
}

func onlyKeys(what string, m map[string]json.RawMessage, allowed ...string) error {
	for k := range m {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return invalid("%s has unknown field %q", what, k)
		}
	}
	return nil
}
