package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrVerification wraps every verdict that a signature does not verify
// (bad signature, invalid bundle, model mismatch), as opposed to input
// errors such as an unreadable key file.
var ErrVerification = errors.New("verification failed")

// Options tunes signing and verification.
type Options struct {
	// IgnorePaths are extra relative paths (from the model root, "/"
	// separated) to exclude, besides DefaultIgnorePaths.
	IgnorePaths []string
	// SignaturePath is the bundle file; when it lies inside the model
	// folder it is excluded from the manifest (OMS §6.2).
	SignaturePath string
}

// Result describes a successful verification.
type Result struct {
	Method     string // "key" or "certificate"
	Subject    string // subject[0].name, informational only
	RootDigest string // subject[0].digest.sha256
	Files      int    // number of files checked
	KeyHint    string // SHA-256 fingerprint of the verifying key (hex)
}

// pae is the DSSE v1 Pre-Authentication Encoding: the bytes that are
// actually signed, binding the payload type to the payload.
func pae(payloadType string, payload []byte) []byte {
	return fmt.Appendf(nil, "DSSEv1 %d %s %d %s", len(payloadType), payloadType, len(payload), payload)
}

// digestFor picks the hash the Sigstore algorithm registry pairs with each
// ECDSA curve (ecdsa-sha2-nistp256/384/521).
func digestFor(curve elliptic.Curve, msg []byte) ([]byte, error) {
	switch curve {
	case elliptic.P256():
		h := sha256.Sum256(msg)
		return h[:], nil
	case elliptic.P384():
		h := sha512.Sum384(msg)
		return h[:], nil
	case elliptic.P521():
		h := sha512.Sum512(msg)
		return h[:], nil
	}
	return nil, fmt.Errorf("unsupported ECDSA curve %s", curve.Params().Name)
}

// ParsePrivateKey reads an ECDSA private key (P-256, P-384 or P-521) from
// PEM, as SEC 1 ("EC PRIVATE KEY") or PKCS #8 ("PRIVATE KEY").
func ParsePrivateKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, errors.New("signing key: no PEM block found")
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		return k, checkCurve(k.Curve)
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("signing key: %w", err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("signing key: %T is not an ECDSA key", k)
		}
		return ek, checkCurve(ek.Curve)
	}
	return nil, fmt.Errorf("signing key: unsupported PEM block %q (want EC PRIVATE KEY or PRIVATE KEY)", blk.Type)
}

// ParsePublicKey reads an ECDSA public key from a PEM "PUBLIC KEY" block.
func ParsePublicKey(keyPEM []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return nil, errors.New("public key: no PEM block found")
	}
	if blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("public key: unsupported PEM block %q (want PUBLIC KEY)", blk.Type)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T is not an ECDSA key", k)
	}
	return ek, checkCurve(ek.Curve)
}

func checkCurve(c elliptic.Curve) error {
	switch c {
	case elliptic.P256(), elliptic.P384(), elliptic.P521():
		return nil
	}
	return fmt.Errorf("unsupported ECDSA curve %s", c.Params().Name)
}

// KeyHint is the publicKey.hint of key-method bundles: the hex SHA-256 of
// the key's PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----", 64
// column base64, trailing newline). That is what the reference
// implementation hashes; the OMS key vector's hint matches it for its key.
func KeyHint(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return hex.EncodeToString(h[:]), nil
}

// ignoreList returns the paths excluded from the manifest: the defaults,
// the caller's extra paths and the signature file when inside the model.
func ignoreList(modelPath string, opts Options) ([]string, error) {
	ig := append([]string(nil), DefaultIgnorePaths...)
	for _, p := range opts.IgnorePaths {
		if err := checkIgnorePath(p); err != nil {
			return nil, err
		}
		ig = appendUnique(ig, p)
	}
	if opts.SignaturePath != "" {
		if rel, ok := relInside(modelPath, opts.SignaturePath); ok {
			ig = appendUnique(ig, rel)
		}
	}
	return ig, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}

// relInside returns p relative to the folder root ("/" separated) when p
// lies inside it.
func relInside(root, p string) (string, bool) {
	ar, err1 := filepath.Abs(root)
	ap, err2 := filepath.Abs(p)
	if err1 != nil || err2 != nil {
		return "", false
	}
	if fi, err := os.Stat(ar); err != nil || !fi.IsDir() {
		return "", false
	}
	rel, err := filepath.Rel(ar, ap)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

// statementFor hashes the model and builds the OMS statement payload.
func statementFor(modelPath string, opts Options) ([]byte, error) {
	ig, err := ignoreList(modelPath, opts)
	if err != nil {
		return nil, err
	}
	res, err := buildManifest(modelPath, ig)
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("model %s has no files to sign", modelPath)
	}
	root, err := RootDigest(res)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(modelPath)
	if err != nil {
		return nil, err
	}
	noLinks := false
	st := Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: filepath.Base(abs), Digest: map[string]string{"sha256": root}}},
		PredicateType: PredicateType,
		Predicate: Predicate{
			Resources: res,
			Serialization: Serialization{
				Method:        "files",
				HashType:      "sha256",
				AllowSymlinks: &noLinks,
				IgnorePaths:   ig,
			},
		},
	}
	return json.Marshal(st)
}

// signEnvelope signs the payload's PAE with key (ASN.1 DER ECDSA).
func signEnvelope(payload []byte, key *ecdsa.PrivateKey) (*Envelope, error) {
	dg, err := digestFor(key.Curve, pae(PayloadType, payload))
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, dg)
	if err != nil {
		return nil, err
	}
	return &Envelope{
		Payload:     base64.StdEncoding.EncodeToString(payload),
		PayloadType: PayloadType,
		Signatures:  []Signature{{Sig: base64.StdEncoding.EncodeToString(sig)}},
	}, nil
}

// SignKey signs the model file or folder at modelPath with an ECDSA private
// key in PEM and returns the OMS bundle JSON (key method).
func SignKey(modelPath string, keyPEM []byte) ([]byte, error) {
	return SignKeyWithOptions(modelPath, keyPEM, Options{})
}

// SignKeyWithOptions is SignKey with extra ignore paths and the signature
// file to exclude.
func SignKeyWithOptions(modelPath string, keyPEM []byte, opts Options) ([]byte, error) {
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	hint, err := KeyHint(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return signWith(modelPath, key, &VerificationMaterial{PublicKey: &PublicKeyIdentifier{Hint: hint}}, opts)
}

func signWith(modelPath string, key *ecdsa.PrivateKey, vm *VerificationMaterial, opts Options) ([]byte, error) {
	payload, err := statementFor(modelPath, opts)
	if err != nil {
		return nil, err
	}
	env, err := signEnvelope(payload, key)
	if err != nil {
		return nil, err
	}
	b := Bundle{MediaType: BundleMediaType, VerificationMaterial: vm, DSSEEnvelope: env}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// verifyEnvelope checks that at least one DSSE signature verifies with pub.
func verifyEnvelope(p *Parsed, pub *ecdsa.PublicKey) error {
	dg, err := digestFor(pub.Curve, pae(p.Bundle.DSSEEnvelope.PayloadType, p.Payload))
	if err != nil {
		return err
	}
	for _, s := range p.Bundle.DSSEEnvelope.Signatures {
		sig, err := decodeB64(s.Sig)
		if err != nil {
			continue
		}
		if ecdsa.VerifyASN1(pub, dg, sig) {
			return nil
		}
	}
	return errors.New("DSSE signature does not verify with the given key")
}

func verifyFail(err error) error { return fmt.Errorf("%w: %w", ErrVerification, err) }

// Verify checks an OMS key-method bundle against the model at modelPath and
// the ECDSA public key in PEM. A verdict of "does not verify" wraps
// ErrVerification; a model mismatch also carries a *ManifestError naming
// the modified, added and removed files.
func Verify(modelPath string, bundleJSON []byte, pubKeyPEM []byte) (*Result, error) {
	return VerifyWithOptions(modelPath, bundleJSON, pubKeyPEM, Options{})
}

// VerifyWithOptions is Verify with extra ignore paths and the signature
// file to exclude.
func VerifyWithOptions(modelPath string, bundleJSON []byte, pubKeyPEM []byte, opts Options) (*Result, error) {
	p, hint, err := VerifyBundleSignature(bundleJSON, pubKeyPEM)
	if err != nil {
		return nil, err
	}
	r, err := checkModel(modelPath, &p.Statement, opts)
	if err != nil {
		return nil, err
	}
	r.Method, r.KeyHint = "key", hint
	return r, nil
}

// VerifyBundleSignature parses a key-method bundle and verifies its DSSE
// signature with the public key in PEM, without looking at any model. It
// returns the parsed bundle and the key's hint. Verdicts wrap
// ErrVerification; a bad key PEM is a plain error.
func VerifyBundleSignature(bundleJSON, pubKeyPEM []byte) (*Parsed, string, error) {
	pub, err := ParsePublicKey(pubKeyPEM)
	if err != nil {
		return nil, "", err
	}
	hint, err := KeyHint(pub)
	if err != nil {
		return nil, "", err
	}
	p, err := ParseBundle(bundleJSON)
	if err != nil {
		return nil, "", verifyFail(err)
	}
	if m := p.Bundle.VerificationMaterial.Method(); m != "key" {
		return nil, "", verifyFail(fmt.Errorf("bundle uses the %s method; a public key verifies only key-method bundles", m))
	}
	if err := verifyEnvelope(p, pub); err != nil {
		// The hint only identifies the key (the signature is what counts),
		// but it makes a wrong-key failure easy to diagnose.
		if h := p.Bundle.VerificationMaterial.PublicKey.Hint; h != "" && h != hint {
			err = fmt.Errorf("%w (bundle key hint %s, given key %s)", err, h, hint)
		}
		return nil, "", verifyFail(err)
	}
	return p, hint, nil
}

// checkModel recomputes the manifest with the bundle's serialization
// parameters and compares it with the signed one.
func checkModel(modelPath string, st *Statement, opts Options) (*Result, error) {
	ser := st.Predicate.Serialization
	if ser.Method != "files" {
		return nil, verifyFail(fmt.Errorf("serialization method %q is not supported (only files)", ser.Method))
	}
	if ser.HashType != "sha256" {
		return nil, verifyFail(fmt.Errorf("hash_type %q is not supported (only sha256)", ser.HashType))
	}
	if *ser.AllowSymlinks {
		return nil, verifyFail(errors.New("allow_symlinks=true is not supported"))
	}
	if _, err := os.Stat(modelPath); err != nil {
		return nil, err // a missing model is an input error, not a verdict
	}
	// Exclude what the signer excluded, plus our own signature file.
	o := opts
	o.IgnorePaths = append(append([]string(nil), opts.IgnorePaths...), ser.IgnorePaths...)
	ig, err := ignoreList(modelPath, o)
	if err != nil {
		return nil, verifyFail(err)
	}
	local, err := buildManifest(modelPath, ig)
	if err != nil {
		return nil, verifyFail(err)
	}
	if err := compareManifests(st.Predicate.Resources, local); err != nil {
		return nil, verifyFail(err)
	}
	return &Result{
		Subject:    st.Subject[0].Name,
		RootDigest: st.Subject[0].Digest["sha256"],
		Files:      len(local),
	}, nil
}

// SignCertificate signs the model with an ECDSA private key whose
// certificate is the first PEM certificate in chainPEM (followed by its CA
// chain); the bundle carries the chain (certificate method).
func SignCertificate(modelPath string, keyPEM, chainPEM []byte, opts Options) ([]byte, error) {
	key, err := ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, err
	}
	certs, err := parseCertsPEM(chainPEM)
	if err != nil {
		return nil, err
	}
	leafKey, ok := certs[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !leafKey.Equal(&key.PublicKey) {
		return nil, errors.New("certificate chain: the first certificate is not for the signing key")
	}
	chain := &X509CertificateChain{}
	for _, c := range certs {
		chain.Certificates = append(chain.Certificates, X509Certificate{RawBytes: base64.StdEncoding.EncodeToString(c.Raw)})
	}
	return signWith(modelPath, key, &VerificationMaterial{X509CertificateChain: chain}, opts)
}

func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE found")
	}
	return certs, nil
}

// VerifyCertificate checks a certificate-method bundle: the leaf must chain
// (through the bundle's intermediates) to a root in rootPEM and be valid at
// now, and its ECDSA key must verify the DSSE signature; then the model is
// compared with the manifest.
func VerifyCertificate(modelPath string, bundleJSON, rootPEM []byte, now time.Time, opts Options) (*Result, error) {
	roots, err := parseCertsPEM(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("root certificates: %w", err)
	}
	p, err := ParseBundle(bundleJSON)
	if err != nil {
		return nil, verifyFail(err)
	}
	vm := p.Bundle.VerificationMaterial
	if vm.Method() != "certificate" {
		return nil, verifyFail(fmt.Errorf("bundle uses the %s method, not certificate", vm.Method()))
	}
	var chain []*x509.Certificate
	for i, c := range vm.X509CertificateChain.Certificates {
		der, err := decodeB64(c.RawBytes)
		if err != nil {
			return nil, verifyFail(fmt.Errorf("certificates[%d]: %w", i, err))
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, verifyFail(fmt.Errorf("certificates[%d]: %w", i, err))
		}
		chain = append(chain, cert)
	}
	vo := x509.VerifyOptions{
		Roots:         x509.NewCertPool(),
		Intermediates: x509.NewCertPool(),
		CurrentTime:   now,
		// Signing certificates carry code-signing or no EKU; OMS does not
		// pin one, so accept any.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	for _, r := range roots {
		vo.Roots.AddCert(r)
	}
	for _, c := range chain[1:] {
		vo.Intermediates.AddCert(c)
	}
	if _, err := chain[0].Verify(vo); err != nil {
		return nil, verifyFail(fmt.Errorf("certificate chain: %w", err))
	}
	pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, verifyFail(fmt.Errorf("leaf certificate key %T is not ECDSA", chain[0].PublicKey))
	}
	if err := checkCurve(pub.Curve); err != nil {
		return nil, verifyFail(err)
	}
	if err := verifyEnvelope(p, pub); err != nil {
		return nil, verifyFail(err)
	}
	r, err := checkModel(modelPath, &p.Statement, opts)
	if err != nil {
		return nil, err
	}
	hint, _ := KeyHint(pub)
	r.Method, r.KeyHint = "certificate", hint
	return r, nil
}
