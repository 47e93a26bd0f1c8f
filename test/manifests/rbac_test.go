package manifests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// access is one request multinetd's ServiceAccount makes, or must not be able to make.
// An empty namespace means all namespaces (a cluster-wide list or watch); a resource may name
// a subresource ("resourceclaims/status").
type access struct {
	verb, group, resource, namespace string
}

func (a access) String() string {
	res := a.resource
	if a.group != "" {
		res += "." + a.group
	}
	where := "all namespaces"
	if a.namespace != "" {
		where = "namespace " + a.namespace
	}
	return fmt.Sprintf("%s %s in %s", a.verb, res, where)
}

const (
	nadGroup = "k8s.cni.cncf.io"
	nads     = "network-attachment-definitions"
	someNS   = "tenant-a"
)

// needed is every request multinetd makes: informers on pods (of its node, by field selector:
// RBAC sees a cluster-wide list/watch) and NADs, a get of a pod or NAD younger than the
// cache, the network-status patch, Events, multinet-ipam's informer on Node metadata, and its
// IPBlocks (an informer, create, compare-and-swap update, delete); for DRA, a get of a claim
// and the apply of its status, a list of ResourceSlices, and the NIC driver's slices (an
// informer, create, update, delete) and a get of its Node.
var needed = []access{
	{"list", "", "pods", ""}, {"watch", "", "pods", ""}, {"get", "", "pods", someNS},
	{"patch", "", "pods", someNS},
	{"list", nadGroup, nads, ""}, {"watch", nadGroup, nads, ""}, {"get", nadGroup, nads, someNS},
	{"create", "", "events", someNS}, {"patch", "", "events", someNS},
	{"create", "events.k8s.io", "events", someNS}, {"patch", "events.k8s.io", "events", someNS},
	{"list", "", "nodes", ""}, {"watch", "", "nodes", ""},
	{"list", ipamGroup, "ipblocks", ""}, {"watch", ipamGroup, "ipblocks", ""}, {"get", ipamGroup, "ipblocks", ""},
	{"create", ipamGroup, "ipblocks", ""}, {"update", ipamGroup, "ipblocks", ""}, {"delete", ipamGroup, "ipblocks", ""},
	{"get", draGroup, "resourceclaims", someNS}, {"patch", draGroup, "resourceclaims/status", someNS},
	{"associated-node:patch", draGroup, "resourceclaims/driver", someNS},
	{"list", draGroup, "resourceslices", ""}, {"watch", draGroup, "resourceslices", ""},
	{"create", draGroup, "resourceslices", ""}, {"update", draGroup, "resourceslices", ""}, {"delete", draGroup, "resourceslices", ""},
	{"get", "", "nodes", ""},
}

const (
	ipamGroup = "ipam.multinet.io"
	draGroup  = "resource.k8s.io"
)

// forbidden is a sample of what least privilege rules out.
var forbidden = []access{
	{"delete", "", "pods", someNS}, {"update", "", "pods", someNS}, {"create", "", "pods", someNS},
	{"get", "", "secrets", someNS}, {"list", "", "secrets", ""},
	{"update", nadGroup, nads, someNS}, {"patch", nadGroup, nads, someNS},
	{"create", nadGroup, nads, someNS}, {"delete", nadGroup, nads, someNS},
	{"delete", "", "events", someNS}, {"update", "", "nodes", ""}, {"get", "", "configmaps", someNS},
	{"patch", "", "nodes", ""}, {"delete", "", "nodes", ""},
	{"patch", ipamGroup, "ipblocks", ""}, {"deletecollection", ipamGroup, "ipblocks", ""},
	{"update", draGroup, "resourceclaims", someNS}, {"patch", draGroup, "resourceclaims", someNS},
	{"create", draGroup, "resourceclaims", someNS}, {"delete", draGroup, "resourceclaims", someNS},
	{"list", draGroup, "resourceclaims", ""}, {"update", draGroup, "resourceclaims/status", someNS},
	{"arbitrary-node:patch", draGroup, "resourceclaims/driver", someNS},
	{"patch", draGroup, "resourceslices", ""}, {"deletecollection", draGroup, "resourceslices", ""},
	{"create", draGroup, "deviceclasses", ""}, {"update", draGroup, "deviceclasses", ""},
}

// checkRBAC impersonates the DaemonSet's ServiceAccount and asks the API server, with
// SelfSubjectAccessReviews, what it may do.
func checkRBAC(t *testing.T, admin *rest.Config, ds *appsv1.DaemonSet) {
	t.Helper()
	cfg := rest.CopyConfig(admin)
	user := fmt.Sprintf("system:serviceaccount:%s:%s", ds.Namespace, ds.Spec.Template.Spec.ServiceAccountName)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitAllowed(t, client, needed[0]) // the RBAC authorizer's cache sees the new binding shortly
	for _, a := range needed {
		if ok := allowed(t, client, a); !ok {
			t.Errorf("%s cannot %s; multinetd needs it", user, a)
		}
	}
	for _, a := range forbidden {
		if ok := allowed(t, client, a); ok {
			t.Errorf("%s can %s; it should not", user, a)
		}
	}
}

// waitAllowed waits until a is allowed, for at most 10 seconds.
func waitAllowed(t *testing.T, client kubernetes.Interface, a access) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return allowed(t, client, a), nil })
	if err != nil {
		t.Fatalf("the ServiceAccount never got %s: %v", a, err)
	}
}

// allowed asks the API server whether the client's user may make request a.
func allowed(t *testing.T, client kubernetes.Interface, a access) bool {
	t.Helper()
	resource, sub, _ := strings.Cut(a.resource, "/")
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: resource, Subresource: sub,
		},
	}}
	got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview %s: %v", a, err)
	}
	return got.Status.Allowed
}
