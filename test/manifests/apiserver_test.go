package manifests

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/multinet/multinet/internal/testbed"
)

// fieldManager owns the applied fields, as "kubectl" would after `kubectl apply --server-side`.
const fieldManager = "multinet-manifests-test"

// apply creates or updates every object with server-side apply and strict field validation:
// a field the API does not know (a typo in a manifest) is an error, not silently dropped.
func apply(t *testing.T, cfg *rest.Config, objs []*unstructured.Unstructured) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(dc)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range objs {
		if err := applyOne(t.Context(), client, mapper, obj); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		t.Logf("applied %s %s", obj.GetKind(), obj.GetName())
	}
}

// applyOne sends obj as an apply patch to its resource. A namespaced object must name its
// namespace: the manifests are also meant for `kubectl apply -f`, without a kustomize
// namespace transformer.
func applyOne(ctx context.Context, client dynamic.Interface, mapper meta.RESTMapper, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return err
	}
	var res dynamic.ResourceInterface = client.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			return errors.New("namespaced object without metadata.namespace")
		}
		res = client.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	_, err = res.Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: fieldManager, FieldValidation: metav1.FieldValidationStrict})
	return err
}

// checkInstalled reads back the DaemonSet, ServiceAccount, ClusterRole, ClusterRoleBinding
// and ConfigMap, and checks that they refer to one another; it returns the DaemonSet.
func checkInstalled(t *testing.T, cp *testbed.ControlPlane, objs []*unstructured.Unstructured) *appsv1.DaemonSet {
	t.Helper()
	ctx, c := t.Context(), cp.Client
	want := daemonSet(t, objs)
	ns := want.Namespace
	ds, err := c.AppsV1().DaemonSets(ns).Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("DaemonSet: %v", err)
	}
	pod := ds.Spec.Template.Spec
	sa, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, pod.ServiceAccountName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the DaemonSet's ServiceAccount: %v", err)
	}
	crb, err := c.RbacV1().ClusterRoleBindings().Get(ctx, sa.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ClusterRoleBinding: %v", err)
	}
	if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != "ServiceAccount" ||
		crb.Subjects[0].Name != sa.Name || crb.Subjects[0].Namespace != ns {
		t.Errorf("ClusterRoleBinding subjects %+v, want only ServiceAccount %s/%s", crb.Subjects, ns, sa.Name)
	}
	if _, err := c.RbacV1().ClusterRoles().Get(ctx, crb.RoleRef.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("ClusterRole: %v", err)
	}
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil {
			continue
		}
		if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("ConfigMap of volume %s: %v", v.Name, err)
		}
	}
	return ds
}

// admitPod creates a pod from the DaemonSet's template, bound to a node that does not exist
// (nothing runs it), so that pod admission checks what a DaemonSet's own validation does not:
// the priority class resolves, privileged and hostPath are allowed in the namespace.
func admitPod(t *testing.T, cp *testbed.ControlPlane, ds *appsv1.DaemonSet) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "multinet-admission", Namespace: ds.Namespace,
			Labels: ds.Spec.Template.Labels},
		Spec: *ds.Spec.Template.Spec.DeepCopy(),
	}
	pod.Spec.NodeName = "no-such-node"
	got, err := cp.Client.CoreV1().Pods(ds.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a pod of the DaemonSet's template is refused: %v", err)
	}
	if got.Spec.Priority == nil || *got.Spec.Priority < 2_000_000_000 {
		t.Errorf("pod priority %v: priority class %q not resolved to a system-critical one", got.Spec.Priority, got.Spec.PriorityClassName)
	}
	err = cp.Client.CoreV1().Pods(ds.Namespace).Delete(t.Context(), pod.Name, metav1.DeleteOptions{})
	if err != nil {
		t.Errorf("delete pod: %v", err)
	}
}
