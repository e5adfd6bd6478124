package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/bulwark-sec/bulwark/internal/atomicfile"
	"github.com/bulwark-sec/bulwark/sign"
)

func newSignCmd() *cobra.Command {
	var keyPath, out, chainPath string
	var ignore []string
	c := &cobra.Command{
		Use:   "sign PATH",
		Short: "Sign a model file or folder (OpenSSF Model Signing v1.0 bundle)",
		Long: `sign hashes every file of the model (SHA-256, sorted by path relative to
the model root; .git, .gitignore, .gitattributes, .github and the signature
file itself are left out), puts the manifest in an in-toto statement with the
OMS predicate, signs it as a DSSE envelope and writes a Sigstore bundle (JSON).

--key is an ECDSA P-256, P-384 or P-521 private key in PEM (SEC 1 or
PKCS #8). With --cert-chain (the key's certificate first, then its CA chain,
in PEM) the bundle uses the certificate method; otherwise the key method.
Symbolic links inside the model are refused.`,
		Example: `  bulwark sign ./model-dir --key signing-key.pem --out model.sig
  bulwark sign model.safetensors --key signing-key.pem --cert-chain chain.pem --out model.sig`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			keyPEM, err := os.ReadFile(keyPath)
			if err != nil {
				return err
			}
			opts := sign.Options{IgnorePaths: ignore, SignaturePath: out}
			var b []byte
			if chainPath != "" {
				chain, err := os.ReadFile(chainPath)
				if err != nil {
					return err
				}
				b, err = sign.SignCertificate(args[0], keyPEM, chain, opts)
				if err != nil {
					return err
				}
			} else if b, err = sign.SignKeyWithOptions(args[0], keyPEM, opts); err != nil {
				return err
			}
			if err := atomicfile.WriteBytes(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "signed %s -> %s\n", args[0], out)
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "ECDSA private key (PEM)")
	c.Flags().StringVar(&out, "out", "", "write the signature bundle to this file (atomically)")
	c.Flags().StringVar(&chainPath, "cert-chain", "", "certificate of the key followed by its CA chain (PEM): use the certificate method")
	c.Flags().StringSliceVar(&ignore, "ignore-paths", nil, "extra paths, relative to the model folder, to leave out (repeatable)")
	_ = c.MarkFlagRequired("key")
	_ = c.MarkFlagRequired("out")
	return c
}

func newVerifyCmd() *cobra.Command {
	var keyPath, sigPath, rootPath string
	c := &cobra.Command{
		Use:   "verify PATH",
		Short: "Verify a model file or folder against an OpenSSF Model Signing v1.0 bundle",
		Long: `verify checks the bundle's DSSE signature, with --key (an ECDSA public key
in PEM, key method) or with --root (trusted root/CA certificates in PEM,
certificate method: the bundle's leaf certificate must chain to one and be
valid now), then re-hashes the model and compares it with the signed
manifest. Every modified, added or removed file is named.

Exit codes: 0 verified, 1 the signature or the model does not verify,
2 usage or input error (missing file, bad PEM).`,
		Example: `  bulwark verify ./model-dir --signature model.sig --key signing-key.pub
  bulwark verify ./model-dir --signature model.sig --root ca.pem`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if (keyPath == "") == (rootPath == "") {
				return errors.New("give exactly one of --key and --root")
			}
			b, err := os.ReadFile(sigPath)
			if err != nil {
				return err
			}
			opts := sign.Options{SignaturePath: sigPath}
			var r *sign.Result
			if keyPath != "" {
				pub, rerr := os.ReadFile(keyPath)
				if rerr != nil {
					return rerr
				}
				r, err = sign.VerifyWithOptions(args[0], b, pub, opts)
			} else {
				root, rerr := os.ReadFile(rootPath)
				if rerr != nil {
					return rerr
				}
				r, err = sign.VerifyCertificate(args[0], b, root, time.Now(), opts)
			}
			if err != nil {
				// A verdict exits 1; bad input (unreadable model, bad PEM) exits 2.
				if errors.Is(err, sign.ErrVerification) {
					return &ExitError{Code: ExitPolicy, Err: err}
				}
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "OK: %s verified (%s method, %d files, root digest sha256:%s)\n", args[0], r.Method, r.Files, r.RootDigest)
			return nil
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "ECDSA public key (PEM) for key-method bundles")
	c.Flags().StringVar(&rootPath, "root", "", "trusted root/CA certificates (PEM) for certificate-method bundles")
	c.Flags().StringVar(&sigPath, "signature", "", "the signature bundle to verify")
	_ = c.MarkFlagRequired("signature")
	return c
}
