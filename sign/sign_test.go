package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const omsData = "/work/shared/data/model-signing"

// genKey returns a fresh ECDSA key as private PEM (SEC 1 for P-256, PKCS #8
// otherwise, so both encodings are exercised) and public PEM.
func genKey(t *testing.T, curve elliptic.Curve) (*ecdsa.PrivateKey, []byte, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var priv []byte
	if curve == elliptic.P256() {
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		priv = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		priv = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, priv, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// modelDir makes a small model folder with a nested file and a .git folder
// that must be ignored.
func modelDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "my-model")
	writeFile(t, filepath.Join(d, "config.json"), `{"layers":2}`)
	writeFile(t, filepath.Join(d, "weights.bin"), "weights")
	writeFile(t, filepath.Join(d, "sub", "tokenizer.json"), "tok")
	writeFile(t, filepath.Join(d, ".git", "HEAD"), "ref: main")
	return d
}

func TestRoundTrip(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		t.Run(curve.Params().Name, func(t *testing.T) {
			_, priv, pub := genKey(t, curve)
			dir := modelDir(t)
			b, err := SignKey(dir, priv)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Verify(dir, b, pub)
			if err != nil {
				t.Fatalf("verify folder: %v", err)
			}
			if r.Files != 3 || r.Subject != "my-model" || r.Method != "key" {
				t.Errorf("result = %+v, want 3 files, subject my-model, method key", r)
			}
			p, err := ParseBundle(b)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, res := range p.Statement.Predicate.Resources {
				names = append(names, res.Name)
			}
			if got := strings.Join(names, ","); got != "config.json,sub/tokenizer.json,weights.bin" {
				t.Errorf("manifest names = %s", got)
			}
			root, _ := RootDigest(p.Statement.Predicate.Resources)
			if p.Statement.Subject[0].Digest["sha256"] != root {
				t.Errorf("subject digest %v, want root digest %s", p.Statement.Subject[0].Digest, root)
			}

			file := filepath.Join(dir, "weights.bin")
			b, err = SignKey(file, priv)
			if err != nil {
				t.Fatal(err)
			}
			r, err = Verify(file, b, pub)
			if err != nil {
				t.Fatalf("verify file: %v", err)
			}
			if r.Files != 1 || r.Subject != "weights.bin" {
				t.Errorf("file result = %+v", r)
			}
			// Tampering with the single file is caught too.
			writeFile(t, file, "weightz")
			if _, err := Verify(file, b, pub); err == nil || !strings.Contains(err.Error(), "weights.bin") {
				t.Errorf("tampered single file: err = %v, want it to name weights.bin", err)
			}
		})
	}
}

func TestTamperNamesFile(t *testing.T) {
	_, priv, pub := genKey(t, elliptic.P256())
	cases := []struct {
		name, kind, file string
		change           func(dir string)
	}{
		{"modify", "modified", "sub/tokenizer.json", func(d string) { writeFile(t, filepath.Join(d, "sub", "tokenizer.json"), "TOK") }},
		{"add", "added", "extra.bin", func(d string) { writeFile(t, filepath.Join(d, "extra.bin"), "x") }},
		{"remove", "removed", "config.json", func(d string) { os.Remove(filepath.Join(d, "config.json")) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := modelDir(t)
			b, err := SignKey(dir, priv)
			if err != nil {
				t.Fatal(err)
			}
			tc.change(dir)
			_, err = Verify(dir, b, pub)
			if !errors.Is(err, ErrVerification) {
				t.Fatalf("err = %v, want ErrVerification", err)
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *ManifestError", err)
			}
			if !strings.Contains(err.Error(), tc.kind) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("err = %q, want it to say %s %s", err, tc.kind, tc.file)
			}
		})
	}
}

func TestIgnoredPathsDoNotCount(t *testing.T) {
	_, priv, pub := genKey(t, elliptic.P256())
	dir := modelDir(t)
	sig := filepath.Join(dir, "model.sig")
	opts := Options{SignaturePath: sig, IgnorePaths: []string{"cache"}}
	writeFile(t, filepath.Join(dir, "cache", "x"), "1")
	b, err := SignKeyWithOptions(dir, priv, opts)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, sig, string(b))
	// Changes under .git, cache and the signature file itself are ignored.
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "changed")
	writeFile(t, filepath.Join(dir, "cache", "x"), "2")
	if _, err := VerifyWithOptions(dir, b, pub, Options{SignaturePath: sig}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	p, _ := ParseBundle(b)
	ig := strings.Join(p.Statement.Predicate.Serialization.IgnorePaths, ",")
	if ig != ".git,.gitignore,.gitattributes,.github,cache,model.sig" {
		t.Errorf("ignore_paths = %s", ig)
	}
	// .git is only ignored at the top level.
	writeFile(t, filepath.Join(dir, "sub", ".git"), "nested")
	if _, err := VerifyWithOptions(dir, b, pub, Options{SignaturePath: sig}); err == nil || !strings.Contains(err.Error(), "sub/.git") {
		t.Errorf("nested .git: err = %v, want it reported as added", err)
	}
	if _, err := SignKeyWithOptions(dir, priv, Options{IgnorePaths: []string{"*.bin"}}); err == nil {
		t.Error("glob ignore path accepted")
	}
}

func TestSymlinkRejected(t *testing.T) {
	_, priv, _ := genKey(t, elliptic.P256())
	dir := modelDir(t)
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "link")); err != nil {
		t.Skip("no symlinks:", err)
	}
	if _, err := SignKey(dir, priv); err == nil || !strings.Contains(err.Error(), "symbolic link link") {
		t.Errorf("err = %v, want a symlink error", err)
	}
}

func TestWrongKeyAndTamperedBundle(t *testing.T) {
	_, priv, pub := genKey(t, elliptic.P256())
	_, _, otherPub := genKey(t, elliptic.P256())
	_, _, otherPub384 := genKey(t, elliptic.P384())
	dir := modelDir(t)
	b, err := SignKey(dir, priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{otherPub, otherPub384} {
		_, err := Verify(dir, b, k)
		if !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "signature does not verify") {
			t.Errorf("wrong key: err = %v", err)
		}
	}
	// Re-signing a different payload without the key: swap the payload.
	var bu Bundle
	if err := json.Unmarshal(b, &bu); err != nil {
		t.Fatal(err)
	}
	other := modelDir(t)
	writeFile(t, filepath.Join(other, "weights.bin"), "evil")
	b2, _ := SignKey(other, priv)
	var bu2 Bundle
	json.Unmarshal(b2, &bu2)
	bu.DSSEEnvelope.Payload = bu2.DSSEEnvelope.Payload
	forged, _ := json.Marshal(bu)
	if _, err := Verify(other, forged, pub); err == nil || !strings.Contains(err.Error(), "signature does not verify") {
		t.Errorf("swapped payload: err = %v", err)
	}
	// Bad PEM is an input error, not a verification verdict.
	if _, err := Verify(dir, b, []byte("nope")); err == nil || errors.Is(err, ErrVerification) {
		t.Errorf("bad PEM: err = %v, want a plain input error", err)
	}
	if _, err := SignKey(dir, []byte("nope")); err == nil {
		t.Error("bad private PEM accepted")
	}
}

// schemas compiles the four OMS schemas (they refer to each other by $id).
func schemas(t *testing.T) (bundle, statement *jsonschema.Schema) {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, n := range []string{"bundle", "envelope", "statement", "predicate"} {
		f, err := os.Open(filepath.Join(omsData, "schemas/v1.0", n+".schema.json"))
		if err != nil {
			t.Skip("OMS schemas not available:", err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("https://model_signing/"+n+"/v1.0/schema", doc); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if bundle, err = c.Compile("https://model_signing/bundle/v1.0/schema"); err != nil {
		t.Fatal(err)
	}
	if statement, err = c.Compile("https://model_signing/statement/v1.0/schema"); err != nil {
		t.Fatal(err)
	}
	return bundle, statement
}

func validate(s *jsonschema.Schema, b []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(v)
}

func TestOurBundleMatchesSchemas(t *testing.T) {
	bs, ss := schemas(t)
	_, priv, _ := genKey(t, elliptic.P384())
	b, err := SignKey(modelDir(t), priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(bs, b); err != nil {
		t.Errorf("bundle schema: %v", err)
	}
	p, err := ParseBundle(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(ss, p.Payload); err != nil {
		t.Errorf("statement/predicate schema: %v", err)
	}
	// The validator really checks: a statement with an extra predicate
	// field or a wrong predicateType must fail.
	bad := bytes.Replace(p.Payload, []byte(`"serialization":{`), []byte(`"serialization":{"x":1,`), 1)
	if err := validate(ss, bad); err == nil {
		t.Error("schema accepted an unknown serialization field")
	}
	bad = bytes.Replace(p.Payload, []byte(PredicateType), []byte("https://example.com/x"), 1)
	if err := validate(ss, bad); err == nil {
		t.Error("schema accepted a wrong predicateType")
	}
}

func readVector(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(omsData, "test-vectors/v1.0", rel))
	if err != nil {
		t.Skip("OMS test vectors not available:", err)
	}
	return b
}

func TestValidVectors(t *testing.T) {
	bs, ss := schemas(t)
	for _, tc := range []struct{ file, method string }{
		{"valid/key.bundle.json", "key"},
		{"valid/certificate.bundle.json", "certificate"},
		{"valid/sigstore.bundle.json", "sigstore"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := readVector(t, tc.file)
			p, err := ParseBundle(b)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Bundle.VerificationMaterial.Method(); got != tc.method {
				t.Errorf("method = %s, want %s", got, tc.method)
			}
			if err := validate(bs, b); err != nil {
				t.Errorf("bundle schema: %v", err)
			}
			if err := validate(ss, p.Payload); err != nil {
				t.Errorf("statement schema: %v", err)
			}
			// The vectors carry no public key, so we check the root digest
			// rule on them instead of the signature.
			root, err := RootDigest(p.Statement.Predicate.Resources)
			if err != nil {
				t.Fatal(err)
			}
			if want := p.Statement.Subject[0].Digest["sha256"]; root != want {
				t.Errorf("root digest %s, subject says %s", root, want)
			}
			if tc.method == "certificate" {
				for i, c := range p.Bundle.VerificationMaterial.X509CertificateChain.Certificates {
					der, err := decodeB64(c.RawBytes)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := x509.ParseCertificate(der); err != nil {
						t.Errorf("certificates[%d]: %v", i, err)
					}
				}
			}
		})
	}
}

func TestInvalidVectorsRejected(t *testing.T) {
	bs, _ := schemas(t)
	for _, tc := range []struct{ file, reason string }{
		{"invalid/empty.bundle.json", "empty bundle"},
		{"invalid/missing-envelope.bundle.json", "missing dsseEnvelope"},
		{"invalid/missing-tlog-entries.bundle.json", "missing tlogEntries"},
		{"invalid/missing-verification-material.bundle.json", "missing verificationMaterial"},
		{"invalid-payload/wrong-predicate.bundle.json", "unsupported predicateType"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			b := readVector(t, tc.file)
			_, err := ParseBundle(b)
			if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %v, want ErrInvalidBundle saying %q", err, tc.reason)
			}
			// The bundle-level vectors must fail the bundle schema too (the
			// wrong predicate only shows after decoding the payload).
			if strings.HasPrefix(tc.file, "invalid/") && len(b) > 0 {
				if err := validate(bs, b); err == nil {
					t.Error("bundle schema accepted an invalid vector")
				}
			}
		})
	}
}

// newCert issues a certificate for pub signed by parent/parentKey (self
// signed when parent is nil).
func newCert(t *testing.T, cn string, pub *ecdsa.PublicKey, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool, notAfter time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certPEM(cs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range cs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func TestCertificateMethod(t *testing.T) {
	bs, _ := schemas(t)
	later := time.Now().Add(24 * time.Hour)
	rootKey, _, _ := genKey(t, elliptic.P384())
	root := newCert(t, "root-ca", &rootKey.PublicKey, nil, rootKey, true, later)
	interKey, _, _ := genKey(t, elliptic.P384())
	inter := newCert(t, "intermediate-ca", &interKey.PublicKey, root, rootKey, true, later)
	leafKey, leafPriv, _ := genKey(t, elliptic.P256())
	leaf := newCert(t, "signer", &leafKey.PublicKey, inter, interKey, false, later)

	dir := modelDir(t)
	b, err := SignCertificate(dir, leafPriv, certPEM(leaf, inter), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(bs, b); err != nil {
		t.Errorf("bundle schema: %v", err)
	}
	r, err := VerifyCertificate(dir, b, certPEM(root), time.Now(), Options{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if r.Method != "certificate" || r.Files != 3 {
		t.Errorf("result = %+v", r)
	}
	// A different root does not anchor the chain.
	otherKey, _, _ := genKey(t, elliptic.P384())
	other := newCert(t, "root-ca", &otherKey.PublicKey, nil, otherKey, true, later)
	if _, err := VerifyCertificate(dir, b, certPEM(other), time.Now(), Options{}); err == nil || !strings.Contains(err.Error(), "certificate chain") {
		t.Errorf("other root: err = %v", err)
	}
	// An expired leaf fails.
	if _, err := VerifyCertificate(dir, b, certPEM(root), later.Add(time.Hour), Options{}); err == nil || !strings.Contains(err.Error(), "certificate chain") {
		t.Errorf("expired: err = %v", err)
	}
	// The chain's first certificate must belong to the signing key.
	if _, err := SignCertificate(dir, leafPriv, certPEM(inter), Options{}); err == nil {
		t.Error("signed with a certificate for another key")
	}
	// A key-method verification refuses a certificate bundle.
	_, _, pub := genKey(t, elliptic.P256())
	if _, err := Verify(dir, b, pub); err == nil || !strings.Contains(err.Error(), "certificate method") {
		t.Errorf("key verify of cert bundle: err = %v", err)
	}
	// Tampering is still caught after the chain checks.
	writeFile(t, filepath.Join(dir, "weights.bin"), "x")
	if _, err := VerifyCertificate(dir, b, certPEM(root), time.Now(), Options{}); err == nil || !strings.Contains(err.Error(), "weights.bin") {
		t.Errorf("tampered: err = %v", err)
	}
}

func FuzzParseBundle(f *testing.F) {
	for _, rel := range []string{
		"valid/key.bundle.json", "valid/certificate.bundle.json", "valid/sigstore.bundle.json",
		"invalid/missing-envelope.bundle.json", "invalid-payload/wrong-predicate.bundle.json",
	} {
		if b, err := os.ReadFile(filepath.Join(omsData, "test-vectors/v1.0", rel)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{"publicKey":{"hint":"00"}},"dsseEnvelope":{"payload":"e30=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AA=="}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseBundle(b)
		if err == nil {
			// Whatever parses must satisfy what verification relies on.
			if len(p.Statement.Subject) != 1 || len(p.Statement.Predicate.Resources) == 0 || p.Statement.Predicate.Serialization.AllowSymlinks == nil {
				t.Fatalf("parsed bundle breaks invariants: %+v", p.Statement)
			}
			if _, err := RootDigest(p.Statement.Predicate.Resources); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// vectorKeyPEM is the public key of the OMS vectors' signer. The vectors
// ship no key file, but the certificate vector's leaf certificate carries
// it, and its PEM fingerprint equals the key vector's publicKey.hint, so it
// is the key the key vector was signed with.
func vectorKeyPEM(t *testing.T) []byte {
	t.Helper()
	p, err := ParseBundle(readVector(t, "valid/certificate.bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	der, err := decodeB64(p.Bundle.VerificationMaterial.X509CertificateChain.Certificates[0].RawBytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(c.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
}

func TestVectorSignatures(t *testing.T) {
	keyPEM := vectorKeyPEM(t)
	b := readVector(t, "valid/key.bundle.json")
	p, hint, err := VerifyBundleSignature(b, keyPEM)
	if err != nil {
		t.Fatalf("key vector: %v", err)
	}
	if want := p.Bundle.VerificationMaterial.PublicKey.Hint; hint != want {
		t.Errorf("KeyHint = %s, vector hint %s", hint, want)
	}
	// Flipping one payload byte must break the signature.
	var bu Bundle
	if err := json.Unmarshal(b, &bu); err != nil {
		t.Fatal(err)
	}
	raw, _ := decodeB64(bu.DSSEEnvelope.Payload)
	raw = bytes.Replace(raw, []byte("signme-1"), []byte("signme-0"), 1)
	bu.DSSEEnvelope.Payload = base64.StdEncoding.EncodeToString(raw)
	forged, _ := json.Marshal(bu)
	if _, _, err := VerifyBundleSignature(forged, keyPEM); !errors.Is(err, ErrVerification) {
		t.Errorf("forged key vector: err = %v, want ErrVerification", err)
	}
	// The certificate vector's signature verifies with its leaf key.
	cp, err := ParseBundle(readVector(t, "valid/certificate.bundle.json"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyEnvelope(cp, pub); err != nil {
		t.Errorf("certificate vector: %v", err)
	}
}

func TestParseStatementRejects(t *testing.T) {
	good := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"m","digest":{"sha256":"ab"}}],"predicateType":"https://model_signing/signature/v1.0","predicate":{"resources":[{"name":"a","digest":"ab","algorithm":"sha256"},{"name":"b","digest":"cd","algorithm":"sha256"}],"serialization":{"method":"files","hash_type":"sha256","allow_symlinks":false}}}`
	if _, err := ParseStatement([]byte(good)); err != nil {
		t.Fatalf("good statement: %v", err)
	}
	for _, tc := range []struct{ from, to, reason string }{
		{`"allow_symlinks":false`, `"allow_symlinks":false,"extra":1`, `serialization has unknown field "extra"`},
		{`,"allow_symlinks":false`, ``, "missing serialization.allow_symlinks"},
		{`"method":"files"`, `"method":"files","shard_size":5`, "shard_size must be absent"},
		{`"method":"files"`, `"method":"shards"`, "shard_size must be a positive integer"},
		{`"hash_type":"sha256"`, `"hash_type":"md5"`, "unknown serialization.hash_type"},
		{`{"name":"a"`, `{"name":"c"`, "not sorted"},
		{`"digest":"ab","algorithm"`, `"digest":"AB","algorithm"`, "not lowercase hex"},
		{`"subject":[{"name":"m","digest":{"sha256":"ab"}}]`, `"subject":[]`, "exactly one subject"},
		{`"_type":"https://in-toto.io/Statement/v1"`, `"_type":"https://in-toto.io/Statement/v0.1"`, "statement _type"},
		{`"resources":[{"name":"a","digest":"ab","algorithm":"sha256"},{"name":"b","digest":"cd","algorithm":"sha256"}]`, `"resources":[]`, "no resources"},
	} {
		bad := strings.Replace(good, tc.from, tc.to, 1)
		if bad == good {
			t.Fatalf("replacement %q did not apply", tc.from)
		}
		if _, err := ParseStatement([]byte(bad)); err == nil || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: err = %v, want %q", tc.to, err, tc.reason)
		}
	}
}

func TestSymlinkedModelRoot(t *testing.T) {
	_, priv, pub := genKey(t, elliptic.P256())
	dir := modelDir(t)
	link := filepath.Join(t.TempDir(), "link-to-model")
	if err := os.Symlink(dir, link); err != nil {
		t.Skip("no symlinks:", err)
	}
	b, err := SignKey(link, priv)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := Verify(dir, b, pub); err != nil || r.Files != 3 {
		t.Errorf("verify via real path: %+v, %v", r, err)
	}
}
