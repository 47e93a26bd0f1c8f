package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/firewall"
	"github.com/multinet/multinet/internal/policy/spec"
	"github.com/multinet/multinet/internal/status"
)

// tables is a Firewall that keeps each netns's last rules in memory: the controller's own
// edge (package firewall has its tests on real namespaces).
type tables struct {
	mu    sync.Mutex
	rules map[string][]compile.Ruleset
	calls map[string]int
	fail  error
	// updates counts the calls of Update: rules programmed before, changed since
	updates int
}

func (f *tables) Program(netns string, rs []compile.Ruleset, _ firewall.Options) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	f.rules[netns] = rs
	f.calls[netns]++
	return nil
}

// Update checks that old is what the netns was last programmed with.
func (f *tables) Update(netns string, old, cur []compile.Ruleset, o firewall.Options) error {
	f.mu.Lock()
	had := f.rules[netns]
	f.mu.Unlock()
	if !compile.Equal(old, had) {
		return fmt.Errorf("netns %s: Update from %+v, but it holds %+v", netns, old, had)
	}
	f.mu.Lock()
	f.updates++
	f.mu.Unlock()
	return f.Program(netns, cur, o)
}

func (f *tables) Remove(netns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.rules, netns)
	return nil
}

// programmed are the netns programmed since the last call, sorted.
func (f *tables) programmed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for ns := range f.calls {
		out = append(out, ns)
	}
	clear(f.calls)
	slices.Sort(out)
	return out
}

// labelled answers pods with the labels the test gave them.
type labelled map[string]map[string]string

func (l labelled) Pod(_ context.Context, namespace, name, _ string) (*corev1.Pod, error) {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: l[namespace+"/"+name]}}, nil
}

// testController runs a controller on f with the pods and labels given; sandbox IDs and netns
// paths are the pods' names.
func testController(t *testing.T, f *tables, pods labelled) *Controller {
	t.Helper()
	c := New(Config{Workers: 1}, Deps{Pods: pods, Firewall: f, Events: recordedEvents{},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c.on = true
	close(c.ready)
	for _, ns := range []string{"a", "b"} {
		c.st.setNamespace(ns, map[string]string{"team": ns}, false)
	}
	go c.work()
	t.Cleanup(c.queue.ShutDown)
	for key := range pods {
		ns, name, _ := cut(key)
		rec := &checkpoint.Sandbox{ContainerID: name, Netns: name, PodNamespace: ns, PodName: name, PodUID: name,
			Attachments: []checkpoint.Attachment{{Network: "a/blue", IfName: "net1", State: checkpoint.Added,
				Result: fmt.Appendf(nil, `{"cniVersion":"1.0.0","ips":[{"address":"10.1.0.%d/24"}]}`, len(name))}}}
		if err := c.Enforce(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func cut(key string) (string, string, bool) {
	for i := range key {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return "", key, false
}

// settle waits for the queue to drain and returns the netns programmed meanwhile.
func settle(t *testing.T, c *Controller, f *tables) []string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.queue.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return f.programmed()
}

func mnp(ns, name, networks string, selector map[string]string, from ...networkingv1.NetworkPolicyPeer) *spec.MultiNetworkPolicy {
	return &spec.MultiNetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{spec.PolicyForAnnotation: networks}},
		Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: selector},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: from}}},
	}
}

func fromPods(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

// TestEventsReprogramOnlyTheSandboxesTheyAffect: a policy event reprograms the pods its
// selector matches; a peer's label change reprograms the pods whose policies select it as a
// peer; a namespace's label change, those whose namespaceSelector it touches; nothing else.
func TestEventsReprogramOnlyTheSandboxesTheyAffect(t *testing.T) {
	f := &tables{rules: map[string][]compile.Ruleset{}, calls: map[string]int{}}
	pods := labelled{"a/web1": {"app": "web"}, "a/web2": {"app": "web"}, "a/db": {"app": "db"},
		"a/client": {"role": "client"}, "b/other": {"app": "web"}}
	c := testController(t, f, pods)
	if got := settle(t, c, f); len(got) != 0 {
		t.Fatalf("no policy yet, programmed %v", got)
	}
	c.onPolicy(nil, mnp("a", "web", "blue", map[string]string{"app": "web"}, fromPods(map[string]string{"role": "client"})))
	if got := settle(t, c, f); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Fatalf("policy for app=web in a: programmed %v, want web1 web2", got)
	}
	c.onPolicy(nil, mnp("a", "db", "blue", map[string]string{"app": "db"}))
	if got := settle(t, c, f); !slices.Equal(got, []string{"db"}) {
		t.Fatalf("policy for app=db: programmed %v, want db", got)
	}
	// The client stops being a client: web1 and web2 lose it as a peer.
	c.onLocalPod(podWith("a", "client", map[string]string{"role": "client"}), podWith("a", "client", map[string]string{"role": "none"}))
	if got := settle(t, c, f); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Fatalf("peer relabelled: programmed %v, want web1 web2", got)
	}
	if f.updates != 2 {
		t.Fatalf("peer relabelled: %d Updates, want web1's and web2's, from the rules they had", f.updates)
	}
	// A peer on another node appears with an address on blue.
	c.onPeer(context.Background(), &peerPod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "far"},
		pod: &compile.Pod{Namespace: "a", Name: "far", Labels: map[string]string{"role": "client"},
			Addresses: map[string][]netip.Addr{"a/blue": {netip.MustParseAddr("10.1.0.200")}}}}, false)
	if got := settle(t, c, f); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Fatalf("remote peer: programmed %v, want web1 web2", got)
	}
	// A namespace relabelled: no policy selects by namespace, nothing to do.
	c.onNamespace(&metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "b", Labels: map[string]string{"team": "x"}}}, false)
	if got := settle(t, c, f); len(got) != 0 {
		t.Fatalf("namespace relabelled: programmed %v, want none", got)
	}
	c.onPolicyGone(mnp("a", "web", "blue", nil))
	if got := settle(t, c, f); !slices.Equal(got, []string{"web1", "web2"}) {
		t.Fatalf("policy deleted: programmed %v, want web1 web2", got)
	}
	if len(f.rules["web1"]) != 0 {
		t.Fatalf("web1 keeps rules after its only policy went: %+v", f.rules["web1"])
	}
}

// TestEnforceFailsWhenRulesCannotBeProgrammed: the ADD path gets the error.
func TestEnforceFailsWhenRulesCannotBeProgrammed(t *testing.T) {
	f := &tables{rules: map[string][]compile.Ruleset{}, calls: map[string]int{}}
	c := testController(t, f, labelled{})
	c.onPolicy(nil, mnp("a", "all", "blue", nil))
	f.fail = errors.New("netlink: operation not permitted")
	rec := &checkpoint.Sandbox{ContainerID: "x", Netns: "x", PodNamespace: "a", PodName: "x", PodUID: "x",
		Attachments: []checkpoint.Attachment{{Network: "a/blue", IfName: "net1", State: checkpoint.Added}}}
	err := c.Enforce(context.Background(), rec)
	if err == nil || !errors.Is(err, f.fail) {
		t.Fatalf("Enforce = %v, want the firewall's error", err)
	}
}

func podWith(ns, name string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: k8stypes.UID(name), Labels: labels}}
}

var _ status.EventRecorder = recordedEvents{}
