package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runSignCmd runs sign (or verify) on its own: the lead wires them into root.
func runSignCmd(t *testing.T, verify bool, args ...string) (int, string) {
	t.Helper()
	var o, e bytes.Buffer
	c := newSignCmd()
	if verify {
		c = newVerifyCmd()
	}
	c.SetOut(&o)
	c.SetErr(&e)
	c.SetArgs(args)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.ExecuteContext(context.Background())
	if err != nil {
		return ExitCode(err), err.Error()
	}
	return ExitCode(err), o.String()
}

func TestSignVerifyCommands(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dir := t.TempDir()
	der, _ := x509.MarshalECPrivateKey(k)
	keyPath := filepath.Join(dir, "signing-key.pem")
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
	pder, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	pubPath := filepath.Join(dir, "signing-key.pub")
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644)
	model := filepath.Join(dir, "model-dir")
	os.MkdirAll(model, 0o755)
	os.WriteFile(filepath.Join(model, "weights.bin"), []byte("w"), 0o644)
	sig := filepath.Join(model, "model.sig") // inside the folder: must be excluded

	if code, out := runSignCmd(t, false, model, "--key", keyPath, "--out", sig); code != ExitOK {
		t.Fatalf("sign: exit %d: %s", code, out)
	}
	if code, out := runSignCmd(t, true, model, "--signature", sig, "--key", pubPath); code != ExitOK || !strings.HasPrefix(out, "OK:") || strings.Count(out, "\n") != 1 {
		t.Fatalf("verify: exit %d: %q", code, out)
	}
	os.WriteFile(filepath.Join(model, "weights.bin"), []byte("x"), 0o644)
	if code, out := runSignCmd(t, true, model, "--signature", sig, "--key", pubPath); code != ExitPolicy || !strings.Contains(out, "weights.bin") {
		t.Errorf("tampered: exit %d: %s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "bad.pub"), []byte("nope"), 0o644)
	if code, out := runSignCmd(t, true, model, "--signature", sig, "--key", filepath.Join(dir, "bad.pub")); code != ExitInput {
		t.Errorf("bad PEM: exit %d: %s", code, out)
	}
	if code, out := runSignCmd(t, true, model, "--signature", filepath.Join(dir, "missing.sig"), "--key", pubPath); code != ExitInput {
		t.Errorf("missing sig: exit %d: %s", code, out)
	}
	if code, out := runSignCmd(t, false, filepath.Join(dir, "nope"), "--key", keyPath, "--out", filepath.Join(dir, "x.sig")); code != ExitInput {
		t.Errorf("missing model: exit %d: %s", code, out)
	}
}
