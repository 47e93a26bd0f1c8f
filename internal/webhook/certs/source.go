package certs

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// renewCheck is how often Generated.Renew looks at its certificate's age.
const renewCheck = time.Hour

// Generated serves a certificate its CA signed, renewed by Renew at two thirds of its life
// and signed again when UseCA gives another CA.
type Generated struct {
	hosts []string
	mu    sync.Mutex
	ca    *CA
	cert  *tls.Certificate
}

// NewGenerated signs a first serving certificate for hosts.
func NewGenerated(ca *CA, hosts []string, now time.Time) (*Generated, error) {
	cert, err := ca.Sign(hosts, now)
	if err != nil {
		return nil, err
	}
	return &Generated{ca: ca, hosts: hosts, cert: cert}, nil
}

// UseCA signs a new certificate with ca unless it is the CA in use, and tells whether it did.
func (g *Generated) UseCA(ca *CA, now time.Time) (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ca.Cert.Equal(ca.Cert) {
		return false, nil
	}
	cert, err := ca.Sign(g.hosts, now)
	if err != nil {
		return false, err
	}
	g.ca, g.cert = ca, cert
	return true, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (g *Generated) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cert, nil
}

// Renew signs a new certificate whenever the current one is past two thirds of its life,
// until ctx ends.
func (g *Generated) Renew(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(renewCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.renewIfOld(now, log)
		}
	}
}

func (g *Generated) renewIfOld(now time.Time, log *slog.Logger) {
	g.mu.Lock()
	defer g.mu.Unlock()
	leaf := g.cert.Leaf
	if now.Before(leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)) {
		return
	}
	cert, err := g.ca.Sign(g.hosts, now)
	if err != nil {
		log.Error("serving certificate not renewed", "notAfter", leaf.NotAfter, "err", err)
		return
	}
	g.cert = cert
	log.Info("serving certificate renewed", "notAfter", cert.Leaf.NotAfter)
}

// Files serves a certificate and key read from files (cert-manager's Secret, mounted), read
// again when either file's modification time changes: the kubelet updates a mounted Secret
// in place when cert-manager renews it.
type Files struct {
	certFile, keyFile string
	log               *slog.Logger
	mu                sync.Mutex
	cert              *tls.Certificate
	stamp             [2]time.Time
}

// NewFiles reads the certificate and key once; a failure here is an error.
func NewFiles(certFile, keyFile string, log *slog.Logger) (*Files, error) {
	f := &Files{certFile: certFile, keyFile: keyFile, log: log}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate is tls.Config.GetCertificate. A file that cannot be read again leaves the
// certificate read before in use.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if stamp, err := f.stamps(); err == nil && stamp != f.stamp {
		if err := f.reloadLocked(); err != nil {
			f.log.Error("serving certificate not reloaded", "err", err)
		} else {
			f.log.Info("serving certificate reloaded", "notAfter", f.cert.Leaf.NotAfter)
		}
	}
	return f.cert, nil
}

func (f *Files) reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloadLocked()
}

func (f *Files) reloadLocked() error {
	stamp, err := f.stamps()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
	if err != nil {
		return fmt.Errorf("serving certificate %s, key %s: %w", f.certFile, f.keyFile, err)
	}
	f.cert, f.stamp = &cert, stamp
	return nil
}

func (f *Files) stamps() ([2]time.Time, error) {
	var stamp [2]time.Time
	for i, p := range []string{f.certFile, f.keyFile} {
		st, err := os.Stat(p)
		if err != nil {
			return stamp, fmt.Errorf("serving certificate: %w", err)
		}
		stamp[i] = st.ModTime()
	}
	return stamp, nil
}
