package certs

import (
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestServingCertificateVerifiesForTheServiceNames: a client trusting only the CA's PEM (the
// caBundle) accepts the serving certificate for each Service name and extra IP, and nothing else.
func TestServingCertificateVerifiesForTheServiceNames(t *testing.T) {
	now := time.Now()
	ca, err := NewCA("test-ca", now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseCA(ca.CertPEM, ca.KeyPEM)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("ParseCA of NewCA's PEM: %v", err)
	}
	hosts := append(ServiceHosts("multinet-webhook", "multinet"), "127.0.0.1")
	cert, err := ca.Sign(hosts, now)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, h := range []string{"multinet-webhook.multinet.svc", "multinet-webhook.multinet.svc.cluster.local", "127.0.0.1"} {
		if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool}); err != nil {
			t.Errorf("verify for %s: %v", h, err)
		}
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{DNSName: "evil.example", Roots: pool}); err == nil {
		t.Error("the serving certificate verifies for evil.example")
	}
	if life := cert.Leaf.NotAfter.Sub(now); life < ServingLifetime-time.Minute || life > ServingLifetime {
		t.Errorf("serving certificate lives %s, want %s", life, ServingLifetime)
	}
	other, _ := NewCA("other", now)
	if _, err := ParseCA(ca.CertPEM, other.KeyPEM); err == nil {
		t.Error("ParseCA accepted a key of another CA")
	}
}

// TestGeneratedRenewsAtTwoThirds: the certificate is kept until two thirds of its life, then
// replaced by a new one of the same CA.
func TestGeneratedRenewsAtTwoThirds(t *testing.T) {
	now := time.Now()
	ca, _ := NewCA("test-ca", now)
	g, err := NewGenerated(ca, []string{"svc.ns.svc"}, now)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := g.GetCertificate(nil)
	log := slog.New(slog.DiscardHandler)
	g.renewIfOld(now.Add(ServingLifetime/2), log)
	if c, _ := g.GetCertificate(nil); c != first {
		t.Error("renewed at half its life")
	}
	g.renewIfOld(now.Add(ServingLifetime*3/4), log)
	c, _ := g.GetCertificate(nil)
	if c == first || c.Leaf.CheckSignatureFrom(ca.Cert) != nil {
		t.Error("not renewed, by the same CA, at three quarters of its life")
	}
}

// TestFilesReloadsAChangedCertificate: a renewed pair on disk is served from the next
// handshake; a broken pair leaves the last good one in use.
func TestFilesReloadsAChangedCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	now := time.Now()
	ca, _ := NewCA("test-ca", now)
	write := func(stamp time.Time) *x509.Certificate {
		c, err := ca.Sign([]string{"svc.ns.svc"}, now)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		for p, data := range map[string][]byte{certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
			keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})} {
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, stamp, stamp); err != nil {
				t.Fatal(err)
			}
		}
		return c.Leaf
	}
	first := write(now.Add(-time.Hour))
	f, err := NewFiles(certFile, keyFile, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := f.GetCertificate(nil); !c.Leaf.Equal(first) {
		t.Fatal("not the certificate on disk")
	}
	second := write(now)
	if c, _ := f.GetCertificate(nil); !c.Leaf.Equal(second) {
		t.Error("the renewed certificate is not served")
	}
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.GetCertificate(nil); !c.Leaf.Equal(second) {
		t.Error("a broken file replaced the certificate in use")
	}
}
