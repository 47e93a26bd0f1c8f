package testbed

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// startTimeout bounds how long each component may take to become ready.
const startTimeout = 60 * time.Second

// ControlPlane is an etcd and a kube-apiserver running on loopback for one test.
type ControlPlane struct {
	URL        string // https://127.0.0.1:PORT
	Token      string // bearer token of the admin user (group system:masters)
	CAFile     string // CA that signed the serving certificate; it also signs accepted client certificates
	Kubeconfig string // kubeconfig file for the admin user
	Config     *rest.Config
	Client     kubernetes.Interface
	NADClient  nadclient.Interface

	dir       string // parent of every file of this control plane
	kubeTools string // directory holding etcd and kube-apiserver
	opts      options
	pki       *pki
	port      int
	etcdURL   string
	etcd      *process
	apiserver *process
}

// Option changes how StartControlPlane configures kube-apiserver.
type Option func(*options)

type options struct {
	rbac            bool
	tokens          []string // lines of the token auth file
	serviceAccounts bool     // keep the ServiceAccount admission plugin (a Cluster has its controllers)
	extraArgs       []string // more kube-apiserver flags (a Cluster's kubelet client certificate)
}

// WithRBAC runs kube-apiserver with --authorization-mode=RBAC instead of AlwaysAllow. The
// admin user stays all-powerful through system:masters.
func WithRBAC() Option {
	return func(o *options) { o.rbac = true }
}

// WithToken makes kube-apiserver accept token as the identity of user in groups, e.g. a
// node as ("system:node:n1", "system:nodes").
func WithToken(token, user string, groups ...string) Option {
	return func(o *options) {
		line := strings.Join([]string{token, quoteCSV(user), quoteCSV(user), quoteCSV(strings.Join(groups, ","))}, ",")
		o.tokens = append(o.tokens, line)
	}
}

// StartControlPlane starts etcd and kube-apiserver on free loopback ports with files in a
// test temp dir, waits until the apiserver is ready, installs the CRDs of deploy/crds and
// waits until they are established. Everything is stopped in t.Cleanup. The test fails, with
// the tail of the component's log, if a component is not ready within a minute.
func StartControlPlane(t testing.TB, opts ...Option) *ControlPlane {
	t.Helper()
	start := time.Now()
	c := &ControlPlane{kubeTools: Tools(t, "kube"), dir: t.TempDir(), Token: randomToken()}
	c.opts.tokens = []string{strings.Join([]string{c.Token, "admin", "admin", quoteCSV("system:masters")}, ",")}
	for _, opt := range opts {
		opt(&c.opts)
	}
	t.Cleanup(func() { c.stop(t) })
	if err := c.prepare(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := c.startEtcd(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	c.StartAPIServer(t)
	if err := c.connect(); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	if err := installCRDs(t.Context(), c.Config); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	t.Logf("testbed: control plane at %s ready in %s", c.URL, time.Since(start).Round(time.Millisecond))
	return c
}

// prepare picks the apiserver port and writes the PKI, the token file and the kubeconfig.
func (c *ControlPlane) prepare() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	c.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	if c.pki, err = writePKI(c.dir); err != nil {
		return err
	}
	c.CAFile = c.pki.caFile
	tokens := strings.Join(c.opts.tokens, "\n") + "\n"
	if err := os.WriteFile(c.tokenFile(), []byte(tokens), 0o600); err != nil {
		return fmt.Errorf("writing the token file: %w", err)
	}
	c.Kubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	return c.writeKubeconfig(c.Kubeconfig, c.Token)
}

func (c *ControlPlane) tokenFile() string { return filepath.Join(c.dir, "tokens.csv") }

// startEtcd starts a single-member etcd and waits for its /health.
func (c *ControlPlane) startEtcd() error {
	clientPort, err := freePort()
	if err != nil {
		return err
	}
	peerPort, err := freePort()
	if err != nil {
		return err
	}
	c.etcdURL = "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.etcd, err = startProcess("etcd", filepath.Join(c.kubeTools, "etcd"), filepath.Join(c.dir, "etcd.log"),
		"--name=default",
		"--data-dir="+filepath.Join(c.dir, "etcd-data"),
		"--listen-client-urls="+c.etcdURL,
		"--advertise-client-urls="+c.etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	return waitReady(c.etcd, startTimeout, c.etcdHealthy)
}

func (c *ControlPlane) etcdHealthy() error {
	body, err := get(&http.Client{Timeout: 5 * time.Second}, c.etcdURL+"/health", "")
	if err != nil {
		return err
	}
	if !strings.Contains(body, `"health":"true"`) {
		return fmt.Errorf("etcd health: %s", body)
	}
	return nil
}

// StopAPIServer kills kube-apiserver and waits until it is gone; etcd keeps running and
// keeps the data. Clients see connection errors until StartAPIServer.
func (c *ControlPlane) StopAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver != nil {
		c.apiserver.kill()
		c.apiserver = nil
	}
}

// StartAPIServer starts kube-apiserver on the control plane's port (again, after
// StopAPIServer) and waits until /readyz answers ok.
func (c *ControlPlane) StartAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver != nil {
		t.Fatalf("testbed: kube-apiserver is already running")
	}
	p, err := startProcess("kube-apiserver", filepath.Join(c.kubeTools, "kube-apiserver"),
		filepath.Join(c.dir, "kube-apiserver.log"), c.apiserverArgs()...)
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	c.apiserver = p
	client, err := c.httpClient()
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	ready := func() error {
		body, err := get(client, c.URL+"/readyz", c.Token)
		if err == nil && strings.TrimSpace(body) != "ok" {
			return fmt.Errorf("readyz: %s", body)
		}
		return err
	}
	if err := waitReady(p, startTimeout, ready); err != nil {
		t.Fatalf("testbed: %v", err)
	}
}

func (c *ControlPlane) apiserverArgs() []string {
	authz := "AlwaysAllow"
	if c.opts.rbac {
		authz = "RBAC"
	}
	args := []string{
		"--etcd-servers=" + c.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.dir, "apiserver-certs"),
		"--tls-cert-file=" + c.pki.certFile,
		"--tls-private-key-file=" + c.pki.keyFile,
		"--client-ca-file=" + c.pki.caFile,
		"--token-auth-file=" + c.tokenFile(),
		"--authorization-mode=" + authz,
		"--service-account-key-file=" + c.pki.saKeyFile,
		"--service-account-signing-key-file=" + c.pki.saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true",
		"-v=0",
	}
	if !c.opts.serviceAccounts {
		args = append(args, "--disable-admission-plugins=ServiceAccount")
	}
	return append(args, c.opts.extraArgs...)
}

// stop kills both components, apiserver first. When the test failed, it logs the tail of
// their logs, which are removed with the temp dir.
func (c *ControlPlane) stop(t testing.TB) {
	for _, p := range []*process{c.apiserver, c.etcd} {
		if p == nil {
			continue
		}
		p.kill()
		if t.Failed() {
			t.Log(p.logTail(10))
		}
	}
	c.apiserver, c.etcd = nil, nil
}

// connect builds the admin clients.
func (c *ControlPlane) connect() error {
	c.Config = c.restConfig(c.Token)
	var err error
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	if c.NADClient, err = nadclient.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("network-attachment-definition client: %w", err)
	}
	return nil
}

func (c *ControlPlane) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM},
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
	}
}

// KubeconfigFor writes a kubeconfig that authenticates with token (one given WithToken, or
// c.Token) and returns its path.
func (c *ControlPlane) KubeconfigFor(t testing.TB, token string) string {
	t.Helper()
	f, err := os.CreateTemp(c.dir, "*.kubeconfig")
	if err != nil {
		t.Fatalf("testbed: %v", err)
	}
	_ = f.Close() // only its unique name is needed
	if err := c.writeKubeconfig(f.Name(), token); err != nil {
		t.Fatalf("testbed: %v", err)
	}
	return f.Name()
}

func (c *ControlPlane) writeKubeconfig(path, token string) error {
	const format = `apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: testbed
  user:
    token: %s
contexts:
- name: testbed
  context:
    cluster: testbed
    user: testbed
current-context: testbed
`
	data := fmt.Sprintf(format, c.URL, base64.StdEncoding.EncodeToString(c.pki.caPEM), token)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// httpClient trusts the control plane's CA, for probing /readyz before clients exist.
func (c *ControlPlane) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(c.pki.caPEM) {
		return nil, errors.New("parsing the testbed CA")
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

// get fetches url, with a bearer token when token is set, and returns the body of a 200.
func get(client *http.Client, url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // the body has been read
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), nil
}
