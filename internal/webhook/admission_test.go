package webhook_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	nadclient "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/client/clientset/versioned"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/testbed"
	"github.com/multinet/multinet/internal/webhook"
	"github.com/multinet/multinet/internal/webhook/certs"
)

// warnings collects the API server's Warning headers, as kubectl prints them.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings seen since the last take.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

// world is the API as a user sees it, with the webhook registered.
type world struct {
	kube kubernetes.Interface
	nads nadclient.Interface
	dyn  dynamic.Interface
	warn *warnings
}

const badConflist = `{"cniVersion":"1.0.0","name":"storage","plugins":[{"type":"bridge"},{"type":"../x"}]}`

// TestAdmissionAgainstTheAPIServer registers deploy/webhook's ValidatingWebhookConfiguration
// (clientConfig pointed at the webhook running in-process on loopback) with a real
// kube-apiserver and lets the webhook fill the CA Secret and set caBundle itself, as in a
// cluster. Then, through the API: a bad NAD, a bad networks annotation and a bad
// MultiNetworkPolicy (v1beta1 and v1beta2) are refused with the object, the field and the
// fault; good ones pass; a pod or a policy naming a missing NAD passes with a warning, and so
// does a policy for no network; kube-system is exempt; and once the webhook is stopped, what
// it refused passes (failurePolicy Ignore).
func TestAdmissionAgainstTheAPIServer(t *testing.T) {
	cp := testbed.StartControlPlane(t)
	ctx := t.Context()
	w := newWorld(t, cp.Config)
	for _, ns := range []string{"multinet", "team-a"} {
		cp.CreateNamespace(t, ns)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "multinet-webhook-ca", Namespace: "multinet"}}
	if _, err := cp.Client.CoreV1().Secrets("multinet").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	registerWebhook(t, cp.Client, "https://"+ln.Addr().String()+webhook.Path)

	serveCtx, stop := context.WithCancel(ctx)
	var serveErr error
	served := make(chan struct{})
	go func() {
		defer close(served)
		serveErr = webhook.Serve(serveCtx, ln, webhook.Options{
			Kubeconfig: cp.Kubeconfig, Namespace: "multinet", Service: "multinet-webhook",
			WebhookConfiguration: "multinet-webhook", CASecret: "multinet-webhook-ca", ExtraHosts: []string{"127.0.0.1"},
		}, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	}()
	t.Cleanup(func() { stop(); <-served }) // no log line after the test
	checkBundleIsTheSecretsCA(t, cp.Client)
	w.waitUntilEnforced(t)

	w.checkNADs(t)
	w.checkPods(t)
	w.checkPolicies(t)

	stop()
	if <-served; serveErr != nil {
		t.Fatalf("Serve: %v", serveErr)
	}
	if _, err := w.createNAD(ctx, "storage-bad", badConflist); err != nil {
		t.Errorf("webhook stopped: a bad NAD is refused (%v), want it admitted (failurePolicy Ignore)", err)
	}
}

func newWorld(t *testing.T, base *rest.Config) *world {
	w := &world{warn: &warnings{}}
	cfg := rest.CopyConfig(base)
	cfg.WarningHandler = w.warn
	var err error
	if w.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if w.nads, err = nadclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if w.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return w
}

// registerWebhook creates deploy/webhook's configuration, as shipped (no caBundle) but for
// the URL.
func registerWebhook(t *testing.T, client kubernetes.Interface, url string) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "webhook", "validatingwebhookconfiguration.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		t.Fatalf("deploy/webhook/validatingwebhookconfiguration.yaml: %v", err)
	}
	for i := range c.Webhooks {
		if p := c.Webhooks[i].FailurePolicy; p == nil || *p != admissionregistrationv1.Ignore {
			t.Errorf("webhook %s: failurePolicy not Ignore", c.Webhooks[i].Name)
		}
		c.Webhooks[i].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	}
	if _, err := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), &c, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// checkBundleIsTheSecretsCA waits until the webhook has stored a CA in the Secret and put it
// in every webhook's caBundle.
func checkBundleIsTheSecretsCA(t *testing.T, client kubernetes.Interface) {
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err1 := client.CoreV1().Secrets("multinet").Get(t.Context(), "multinet-webhook-ca", metav1.GetOptions{})
		c, err2 := client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(t.Context(), "multinet-webhook", metav1.GetOptions{})
		if err1 == nil && err2 == nil && len(s.Data[certs.CACertKey]) > 0 && !slices.ContainsFunc(c.Webhooks, lacksCA(s.Data[certs.CACertKey])) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("caBundle not set to the CA Secret's ca.crt within 15s (%v, %v)", err1, err2)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lacksCA tells whether a webhook's caBundle is not ca.
func lacksCA(ca []byte) func(admissionregistrationv1.ValidatingWebhook) bool {
	return func(h admissionregistrationv1.ValidatingWebhook) bool {
		return !bytes.Equal(h.ClientConfig.CABundle, ca)
	}
}

// waitUntilEnforced waits until the API server calls the webhook (it sees the configuration
// and its caBundle a moment after they change): a dry-run create of a bad NAD is refused.
func (w *world) waitUntilEnforced(t *testing.T) {
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "probe"}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: badConflist}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := w.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions("team-a").Create(t.Context(), nad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "denied the request") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a bad NAD still admitted 15s after caBundle was set (last: %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (w *world) createNAD(ctx context.Context, name, config string) (*nadv1.NetworkAttachmentDefinition, error) {
	nad := &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: config}}
	return w.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions("team-a").Create(ctx, nad, metav1.CreateOptions{})
}

func (w *world) checkNADs(t *testing.T) {
	ctx := t.Context()
	w.warn.take()
	_, err := w.createNAD(ctx, "storage", badConflist)
	want := `admission webhook "networkattachmentdefinitions.webhook.multinet.io" denied the request: ` +
		`NetworkAttachmentDefinition team-a/storage: spec.config: plugin 2: type "../x": must be a plain binary name, not a path`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad NAD: error %v\nwant one holding %s", err, want)
	}
	if _, err := w.createNAD(ctx, "storage", `{"cniVersion":"1.0.0","type":"macvlan","master":"eth0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}}`); err != nil {
		t.Errorf("good NAD: %v", err)
	}
	if got := w.warn.take(); len(got) > 0 {
		t.Errorf("good NAD: warnings %q", got)
	}
	if _, err := w.createNAD(ctx, "node-conf", ""); err != nil {
		t.Errorf("NAD with an empty spec.config: %v", err)
	}
	if got := w.warn.take(); len(got) != 1 || !strings.Contains(got[0], "spec.config is empty") {
		t.Errorf("NAD with an empty spec.config: warnings %q, want one that it is read on each node", got)
	}
}

func pod(namespace, name, networks string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": networks}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
}

func (w *world) checkPods(t *testing.T) {
	ctx := t.Context()
	pods := w.kube.CoreV1().Pods("team-a")
	w.warn.take()
	_, err := pods.Create(ctx, pod("team-a", "web-0", `[{"name":"storage","interface":"this-name-is-too-long"}]`), metav1.CreateOptions{})
	want := `admission webhook "pods.webhook.multinet.io" denied the request: Pod team-a/web-0: metadata.annotations[k8s.v1.cni.cncf.io/networks]: ` +
		`network selection element 1 ("team-a/storage"): interface "this-name-is-too-long": longer than 15 bytes`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad annotation: error %v\nwant one holding %s", err, want)
	}
	if _, err := pods.Create(ctx, pod("team-a", "web-0", "storage@net5"), metav1.CreateOptions{}); err != nil {
		t.Errorf("good annotation: %v", err)
	}
	if got := w.warn.take(); len(got) > 0 {
		t.Errorf("good annotation: warnings %q", got)
	}
	if _, err := pods.Create(ctx, pod("team-a", "web-1", "storage,later"), metav1.CreateOptions{}); err != nil {
		t.Errorf("annotation naming a missing NAD: %v", err)
	}
	if got := w.warn.take(); len(got) != 1 || !strings.Contains(got[0], `Pod team-a/web-1: network "team-a/later": NetworkAttachmentDefinition not found`) {
		t.Errorf("annotation naming a missing NAD: warnings %q, want one naming team-a/later", got)
	}
	web0, err := pods.Get(ctx, "web-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web0.Annotations["k8s.v1.cni.cncf.io/networks"] = "storage@@"
	if _, err := pods.Update(ctx, web0, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "Pod team-a/web-0: metadata.annotations[k8s.v1.cni.cncf.io/networks]: ") {
		t.Errorf("update to a bad annotation: error %v, want a refusal naming the pod and the annotation", err)
	}
	if _, err := w.kube.CoreV1().Pods("kube-system").Create(ctx, pod("kube-system", "exempt", "storage@@"), metav1.CreateOptions{}); err != nil {
		t.Errorf("kube-system is exempt, yet: %v", err)
	}
}

// policy is a MultiNetworkPolicy of team-a in version, for the networks forNets (no
// annotation when "-"), with the spec in YAML.
func policy(t *testing.T, version, name, forNets, specYAML string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(spec.Group + "/" + version)
	obj.SetKind(spec.Kind)
	obj.SetName(name)
	if forNets != "-" {
		obj.SetAnnotations(map[string]string{spec.PolicyForAnnotation: forNets})
	}
	var s map[string]any
	if err := yaml.Unmarshal([]byte(specYAML), &s); err != nil {
		t.Fatal(err)
	}
	obj.Object["spec"] = s
	return obj
}

func (w *world) createPolicy(t *testing.T, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	version := obj.GroupVersionKind().Version
	return w.dyn.Resource(spec.GroupVersionResource(version)).Namespace("team-a").Create(t.Context(), obj, metav1.CreateOptions{})
}

// checkPolicies: MultiNetworkPolicies of both versions, judged by spec.Parse. It runs after
// checkNADs, which creates NAD team-a/storage.
func (w *world) checkPolicies(t *testing.T) {
	const denied = `admission webhook "multinetworkpolicies.webhook.multinet.io" denied the request: `
	w.warn.take()
	for _, tc := range []struct {
		version, name, forNets, spec string
		wantErr                      string // a part of the refusal; "" for admitted
		wantWarn                     string // a part of the only warning; "" for none
	}{
		{version: spec.V1beta1, name: "outside", forNets: "storage",
			spec:    `{podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.2.0.0/16, except: [10.1.0.0/16]}}]}]}`,
			wantErr: denied + `MultiNetworkPolicy team-a/outside: spec.ingress[0].from[0].ipBlock.except[0]: "10.1.0.0/16" is not inside cidr "10.2.0.0/16"`},
		{version: spec.V1beta2, name: "range", forNets: "storage",
			spec:    `{podSelector: {}, policyTypes: [Egress], egress: [{ports: [{port: 8080, endPort: 8000}]}]}`,
			wantErr: denied + `MultiNetworkPolicy team-a/range: spec.egress[0].ports[0].endPort: 8000 is not a port number from port 8080 to 65535`},
		{version: spec.V1beta2, name: "bad-for", forNets: "storage,a/b/c", spec: `{podSelector: {}}`,
			wantErr: denied + `MultiNetworkPolicy team-a/bad-for: metadata.annotations[k8s.v1.cni.cncf.io/policy-for]: entry 2: "a/b/c": not name nor namespace/name`},
		{version: spec.V1beta1, name: "web", forNets: "storage",
			spec: `{podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]}`},
		{version: spec.V1beta2, name: "range-ok", forNets: "team-a/storage, later",
			spec:     `{podSelector: {}, ingress: [{ports: [{port: 8000, endPort: 8080}]}]}`,
			wantWarn: `MultiNetworkPolicy team-a/range-ok: network "team-a/later": NetworkAttachmentDefinition not found`},
		{version: spec.V1beta2, name: "nowhere", forNets: "-", spec: `{podSelector: {}}`,
			wantWarn: `MultiNetworkPolicy team-a/nowhere: annotation k8s.v1.cni.cncf.io/policy-for is missing: the policy applies to no network`},
	} {
		_, err := w.createPolicy(t, policy(t, tc.version, tc.name, tc.forNets, tc.spec))
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s %s: error %v\nwant one holding %s", tc.version, tc.name, err, tc.wantErr)
		}
		if got := w.warn.take(); tc.wantWarn == "" && len(got) > 0 || tc.wantWarn != "" && (len(got) != 1 || !strings.Contains(got[0], tc.wantWarn)) {
			t.Errorf("%s %s: warnings %q, want one holding %q", tc.version, tc.name, got, tc.wantWarn)
		}
	}
	web, err := w.dyn.Resource(spec.GroupVersionResource(spec.V1beta2)).Namespace("team-a").Get(t.Context(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web.SetAnnotations(map[string]string{spec.PolicyForAnnotation: "Storage"})
	_, err = w.dyn.Resource(spec.GroupVersionResource(spec.V1beta2)).Namespace("team-a").Update(t.Context(), web, metav1.UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), denied+`MultiNetworkPolicy team-a/web: metadata.annotations[k8s.v1.cni.cncf.io/policy-for]: entry 1: "Storage"`) {
		t.Errorf("update to a bad policy-for: error %v, want a refusal naming the policy and the annotation", err)
	}
}

// testWriter logs the webhook's lines through t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
