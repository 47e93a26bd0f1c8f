package manifests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/testbed"
	"github.com/multinet/multinet/internal/webhook"
)

// The components of deploy/webhook, as an overlay of deploy/ names them.
var (
	webhookComponent = filepath.Join(deployDir, "webhook")
	certManager      = filepath.Join(deployDir, "webhook", "cert-manager")
)

// render runs `kubectl kustomize` on an overlay of deploy/ with components, as a user's
// overlay would be, and decodes its objects.
func render(t *testing.T, components ...string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := filepath.Rel(dir, abs) // kustomize refuses absolute paths
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "resources: [" + rel(deployDir) + "]\n"
	if len(components) > 0 {
		var cs []string
		for _, c := range components {
			cs = append(cs, rel(c))
		}
		k += "components: [" + strings.Join(cs, ", ") + "]\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	kubectl := filepath.Join(testbed.Tools(t, "kube"), "kubectl")
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize with %v: %v\n%s", components, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	objs, err := decodeAll(out)
	if err != nil {
		t.Fatalf("kubectl kustomize with %v: %v", components, err)
	}
	return objs
}

// named tells whether objs hold an object of kind named name, and decodes it into out
// unless out is nil.
func named(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out any) bool {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if out != nil {
				typed(t, o, out)
			}
			return true
		}
	}
	return false
}

// webhookObjects are the typed objects of deploy/webhook, rendered.
type webhookObjects struct {
	deploy  appsv1.Deployment
	service corev1.Service
	pdb     policyv1.PodDisruptionBudget
	config  admissionregistrationv1.ValidatingWebhookConfiguration
	opts    webhook.Options // the Deployment's command line, parsed by multinet-webhook's parser
}

func webhookObjectsOf(t *testing.T, objs []*unstructured.Unstructured) *webhookObjects {
	t.Helper()
	var w webhookObjects
	for kind, out := range map[string]any{"Deployment": &w.deploy, "Service": &w.service,
		"PodDisruptionBudget": &w.pdb, "ValidatingWebhookConfiguration": &w.config} {
		if !named(t, objs, kind, "multinet-webhook", out) {
			t.Fatalf("no %s multinet-webhook", kind)
		}
	}
	c := w.deploy.Spec.Template.Spec.Containers[0]
	args := slices.Clone(c.Command[1:])
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "$(POD_NAMESPACE)", w.deploy.Namespace) // the kubelet's expansion
	}
	var err error
	if w.opts, err = webhook.Parse(args); err != nil {
		t.Fatalf("webhook.Parse of the Deployment's command %q: %v", c.Command, err)
	}
	return &w
}

// TestWebhookComponentRenders renders deploy/ with and without deploy/webhook (and its
// cert-manager variant) and checks that the webhook stays optional, that its Deployment is
// highly available and unprivileged, that its command line parses and names the objects the
// component ships, and that the configuration fails open and exempts kube-system and
// multinet's namespace.
func TestWebhookComponentRenders(t *testing.T) {
	for _, o := range render(t) {
		if strings.HasPrefix(o.GetName(), "multinet-webhook") {
			t.Errorf("deploy/ alone installs %s %s: the webhook must stay optional", o.GetKind(), o.GetName())
		}
	}
	objs := render(t, webhookComponent)
	w := webhookObjectsOf(t, objs)
	checkWebhookDeployment(t, w)
	checkWebhookConfiguration(t, w)
	if w.opts.Namespace != w.deploy.Namespace || w.opts.Service != w.service.Name || w.opts.WebhookConfiguration != w.config.Name {
		t.Errorf("command names namespace %q, Service %q, configuration %q; the component ships %s, %s, %s",
			w.opts.Namespace, w.opts.Service, w.opts.WebhookConfiguration, w.deploy.Namespace, w.service.Name, w.config.Name)
	}
	if !named(t, objs, "Secret", w.opts.CASecret, nil) {
		t.Errorf("no Secret %s for the CA", w.opts.CASecret)
	}

	objs = render(t, webhookComponent, certManager)
	w = webhookObjectsOf(t, objs)
	checkWebhookDeployment(t, w)
	checkWebhookConfiguration(t, w)
	checkCertManager(t, objs, w)
}

func checkWebhookDeployment(t *testing.T, w *webhookObjects) {
	t.Helper()
	d := &w.deploy
	spec := d.Spec.Template.Spec
	c := spec.Containers[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas %v, want 2", d.Spec.Replicas)
	}
	pods := labels.Set(d.Spec.Template.Labels)
	for what, sel := range map[string]*metav1.LabelSelector{"PodDisruptionBudget": w.pdb.Spec.Selector,
		"Service": {MatchLabels: w.service.Spec.Selector}} {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || !s.Matches(pods) || s.Empty() {
			t.Errorf("%s selector %v does not select the Deployment's pods (%v)", what, sel, err)
		}
	}
	if w.pdb.Spec.MinAvailable == nil || w.pdb.Spec.MinAvailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget minAvailable %v, want 1", w.pdb.Spec.MinAvailable)
	}
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Error("pod does not run as a non-root user")
	}
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container security context %+v: want a read-only root fs, no privilege escalation, all capabilities dropped", sc)
	}
	if c.Image != daemonSetImage(t) {
		t.Errorf("image %s, want the DaemonSet's %s (one image, one `images:` entry)", c.Image, daemonSetImage(t))
	}
	if c.Command[0] != "/usr/local/bin/multinet-webhook" {
		t.Errorf("command %q, want /usr/local/bin/multinet-webhook (hack/image puts it there)", c.Command[0])
	}
	if w.service.Spec.Ports[0].TargetPort.StrVal != c.Ports[0].Name || !strings.HasSuffix(w.opts.ListenAddress, fmt.Sprint(":", c.Ports[0].ContainerPort)) {
		t.Errorf("Service targets %v, container port %+v, webhook listens on %s", w.service.Spec.Ports[0].TargetPort, c.Ports[0], w.opts.ListenAddress)
	}
}

func daemonSetImage(t *testing.T) string {
	t.Helper()
	return daemonSet(t, loadDeploy(t)).Spec.Template.Spec.Containers[0].Image
}

func checkWebhookConfiguration(t *testing.T, w *webhookObjects) {
	t.Helper()
	for _, h := range w.config.Webhooks {
		if h.FailurePolicy == nil || *h.FailurePolicy != admissionregistrationv1.Ignore {
			t.Errorf("webhook %s: failurePolicy not Ignore: a webhook that is down would block the cluster", h.Name)
		}
		s := h.ClientConfig.Service
		if s == nil || s.Name != w.service.Name || s.Namespace != w.service.Namespace || s.Path == nil || *s.Path != webhook.Path {
			t.Errorf("webhook %s: clientConfig %+v, want Service %s/%s path %s", h.Name, s, w.service.Namespace, w.service.Name, webhook.Path)
		}
		if len(h.ClientConfig.CABundle) != 0 {
			t.Errorf("webhook %s: caBundle shipped; it is set in the cluster", h.Name)
		}
		if h.Rules[0].Resources[0] != "pods" {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(h.NamespaceSelector)
		if err != nil {
			t.Fatal(err)
		}
		for ns, want := range map[string]bool{"kube-system": false, w.deploy.Namespace: false, "team-a": true} {
			if got := sel.Matches(labels.Set{"kubernetes.io/metadata.name": ns}); got != want {
				t.Errorf("webhook %s: pods of namespace %s reviewed: %v, want %v", h.Name, ns, got, want)
			}
		}
	}
}

// checkCertManager: the certificate files of cert-manager's Secret are served, cainjector
// fills caBundle from that Certificate, and nothing of the generated CA is left.
func checkCertManager(t *testing.T, objs []*unstructured.Unstructured, w *webhookObjects) {
	t.Helper()
	cert := find(t, objs, "Certificate")
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if !slices.Contains(dnsNames, w.service.Name+"."+w.service.Namespace+".svc") {
		t.Errorf("Certificate dnsNames %q lack the Service's name", dnsNames)
	}
	spec := w.deploy.Spec.Template.Spec
	var mountPath string
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secretName {
			for _, m := range spec.Containers[0].VolumeMounts {
				if m.Name == v.Name {
					mountPath = m.MountPath
				}
			}
		}
	}
	if mountPath == "" || filepath.Dir(w.opts.CertFile) != mountPath || filepath.Dir(w.opts.KeyFile) != mountPath {
		t.Errorf("serves %s and %s; cert-manager's Secret %s is mounted at %q", w.opts.CertFile, w.opts.KeyFile, secretName, mountPath)
	}
	if got, want := w.config.Annotations["cert-manager.io/inject-ca-from"], cert.GetNamespace()+"/"+cert.GetName(); got != want {
		t.Errorf("configuration's inject-ca-from %q, want %q", got, want)
	}
	for _, kind := range []string{"Secret", "Role", "RoleBinding"} {
		for _, o := range objs {
			if o.GetKind() == kind && strings.HasPrefix(o.GetName(), "multinet-webhook") {
				t.Errorf("cert-manager variant still has %s %s", kind, o.GetName())
			}
		}
	}
}

// TestWebhookComponentInstalls applies deploy/ with deploy/webhook to a real kube-apiserver
// (server-side, strict) with RBAC on, then asks it what the webhook's ServiceAccount may do:
// exactly its own configuration and CA Secret, by name, and a get of NADs.
func TestWebhookComponentInstalls(t *testing.T) {
	cp := testbed.StartControlPlane(t, testbed.WithRBAC())
	objs := render(t, webhookComponent)
	apply(t, cp.Config, objs)
	w := webhookObjectsOf(t, objs)
	cfg := rest.CopyConfig(cp.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + w.deploy.Namespace + ":" + w.deploy.Spec.Template.Spec.ServiceAccountName}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := w.deploy.Namespace
	type namedAccess struct {
		access
		name string
	}
	vwc := func(verb, name string) namedAccess {
		return namedAccess{access{verb, "admissionregistration.k8s.io", "validatingwebhookconfigurations", ""}, name}
	}
	secret := func(verb, name string) namedAccess { return namedAccess{access{verb, "", "secrets", ns}, name} }
	needs := []namedAccess{vwc("get", w.config.Name), vwc("update", w.config.Name), secret("get", w.opts.CASecret),
		secret("update", w.opts.CASecret), {access{"get", nadGroup, nads, someNS}, "storage"}}
	forbids := []namedAccess{vwc("update", "another"), vwc("list", ""), vwc("create", ""), secret("get", "another"),
		secret("list", ""), secret("create", ""), secret("delete", w.opts.CASecret),
		{access{"list", nadGroup, nads, ""}, ""}, {access{"get", "", "pods", someNS}, ""}}
	waitNamedAllowed(t, client, needs[0].access, needs[0].name)
	for _, a := range needs {
		if !allowedNamed(t, client, a.access, a.name) {
			t.Errorf("the webhook cannot %s %q; it needs to", a.access, a.name)
		}
	}
	for _, a := range forbids {
		if allowedNamed(t, client, a.access, a.name) {
			t.Errorf("the webhook can %s %q; it should not", a.access, a.name)
		}
	}
}

// allowedNamed asks the API server whether the client's user may make request a on the
// object name ("" for any).
func allowedNamed(t *testing.T, client kubernetes.Interface, a access, name string) bool {
	t.Helper()
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Name: name,
		},
	}}
	got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview %s %q: %v", a, name, err)
	}
	return got.Status.Allowed
}

// waitNamedAllowed waits, for at most 10 seconds, until the RBAC authorizer's cache sees the
// new bindings.
func waitNamedAllowed(t *testing.T, client kubernetes.Interface, a access, name string) {
	t.Helper()
	for range 100 {
		if allowedNamed(t, client, a, name) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the webhook's ServiceAccount never got %s %q", a, name)
}
