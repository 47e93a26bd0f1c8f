package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/podinfo"
	"github.com/multinet/multinet/internal/selection"
	"github.com/multinet/multinet/internal/status"
)

// fakePods serves NADs from a map "namespace/name" -> spec.config; hot plug gets the pod itself.
type fakePods struct{ nads map[string]string }

func (p *fakePods) Pod(context.Context, string, string, string) (*corev1.Pod, error) {
	return nil, errors.New("hot plug is handed the pod")
}

func (p *fakePods) NAD(_ context.Context, namespace, name string) (*nadv1.NetworkAttachmentDefinition, error) {
	config, ok := p.nads[namespace+"/"+name]
	if !ok {
		return nil, fmt.Errorf("NAD %s/%s: %w", namespace, name, podinfo.ErrNotFound)
	}
	return &nadv1.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: nadv1.NetworkAttachmentDefinitionSpec{Config: config}}, nil
}

type nopStatus struct{}

func (nopStatus) Set(status.PodRef, string) {}

// plugWorld is a running pod sandbox "c1" of pod ns/p with its cluster network on eth0,
// ready for hot plug.
type plugWorld struct {
	m   *Manager
	ev  *fakeEvents
	ctx context.Context
}

// newPlugWorld attaches eth0 through d in the sandbox whose netns is at netnsPath; the NADs
// green and blue of namespace ns exist.
func newPlugWorld(t *testing.T, d Delegates, netnsPath string, r RouteSetter) *plugWorld {
	t.Helper()
	store, err := checkpoint.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	conf := func(name string) string { return `{"cniVersion":"1.0.0","name":"` + name + `","type":"fake"}` }
	ev := &fakeEvents{}
	pods := &fakePods{nads: map[string]string{"ns/green": conf("green"), "ns/blue": conf("blue")}}
	m := New(Config{}, Deps{Pods: pods, Delegates: d, Store: store.WithoutSync(), Events: ev, Annotations: nopStatus{},
		Routes: r, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req := &request{Request: &cniapi.Request{Command: "ADD", ContainerID: "c1", Netns: netnsPath},
		pod: plan.Pod{Namespace: "ns", Name: "p", UID: "u"}}
	eth0 := plan.Delegate{Network: "cluster", Default: true, IfName: "eth0", ConfList: []byte(conf("cluster"))}
	if _, err := m.attachAll(ctx, req, []plan.Delegate{eth0}); err != nil {
		t.Fatal(err)
	}
	return &plugWorld{m: m, ev: ev, ctx: ctx}
}

// pod is pod ns/p with networks annotation value.
func (w *plugWorld) pod(value string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u",
		Annotations: map[string]string{selection.NetworksAnnotation: value}}}
}

// record is the sandbox's record as stored.
func (w *plugWorld) record(t *testing.T) *checkpoint.Sandbox {
	t.Helper()
	sb, err := w.m.Store.Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

// TestInvalidEditWaitsForTheNextEdit: every kind of annotation that cannot be applied as it
// stands is an ErrInvalidEdit (hot plug waits for the next edit instead of retrying it with
// backoff), with one InvalidNetworkSelection Warning and nothing plugged; a NAD not found,
// which may be created later, is retried.
func TestInvalidEditWaitsForTheNextEdit(t *testing.T) {
	f := newFake()
	w := newPlugWorld(t, f, t.TempDir(), nil)
	invalid := map[string]string{
		"bad JSON":                      `[{"name":"green"`,
		"a JSON object, not a list":     `{"name":"green"}`,
		"an element of the wrong type":  `[{"name":"green","ips":"10.1.0.5/24"}]`,
		"a multicast mac":               `[{"name":"green","mac":"01:00:5e:00:00:01"}]`,
		"a bad IP in ips":               `[{"name":"green","ips":["10.1.0.300/24"]}]`,
		"a duplicated interface name":   `green@net5,blue@net5`,
		"a bad interface name":          `green@this-name-is-far-too-long`,
		"an interface name with /":      `[{"name":"green","interface":"a/b"}]`,
		"the cluster network's eth0":    `green@eth0`,
		"a bad NAD name":                `Green_1`,
		"two default-route elements":    `[{"name":"green","default-route":["10.1.0.1"]},{"name":"blue","default-route":["10.2.0.1"]}]`,
		"two gateways of one family":    `[{"name":"green","default-route":["10.1.0.1","10.1.0.2"]}]`,
		"a negative bandwidth":          `[{"name":"green","bandwidth":{"ingressRate":-1}}]`,
		"a port mapping out of range":   `[{"name":"green","portMappings":[{"hostPort":70000,"containerPort":80}]}]`,
		"an empty name in the list":     `green,,blue`,
		"a bad namespace":               `Bad_NS/green`,
		"an IPAM claim that is no name": `[{"name":"green","ipam-claim-reference":"No Name"}]`,
	}
	for kind, value := range invalid {
		w.ev.reasons = nil
		err := w.m.Reconcile(w.ctx, w.pod(value))
		if !errors.Is(err, ErrInvalidEdit) {
			t.Errorf("%s (%s): %v, want an ErrInvalidEdit", kind, value, err)
		}
		if !slices.Equal(w.ev.reasons, []string{status.ReasonInvalidNetworkSelection}) {
			t.Errorf("%s: events %v, want one InvalidNetworkSelection", kind, w.ev.reasons)
		}
		// A resync pass over the same value posts nothing more: one Warning per edit.
		if err := w.m.Reconcile(w.ctx, w.pod(value)); !errors.Is(err, ErrInvalidEdit) || len(w.ev.reasons) != 1 {
			t.Errorf("%s again: %v, events %v, want an ErrInvalidEdit and no new Event", kind, err, w.ev.reasons)
		}
	}
	if len(f.calls) != 1 { // eth0's ADD only
		t.Errorf("delegate calls %v: an invalid edit plugged or unplugged something", f.calls)
	}
	for kind, value := range map[string]string{"a NAD not found": "green,no-such-nad"} {
		w.ev.reasons = nil
		err := w.m.Reconcile(w.ctx, w.pod(value))
		if err == nil || errors.Is(err, ErrInvalidEdit) {
			t.Errorf("%s: %v, want an error retried with backoff, not an ErrInvalidEdit", kind, err)
		}
		if !slices.Equal(w.ev.reasons, []string{status.ReasonInvalidNetworkSelection}) {
			t.Errorf("%s: events %v, want one InvalidNetworkSelection", kind, w.ev.reasons)
		}
	}
	if err := w.m.Reconcile(w.ctx, w.pod("green")); err != nil {
		t.Fatalf("the annotation fixed: %v", err)
	}
	if got := ifnamesOf(w.record(t)); !slices.Equal(got, []string{"eth0", "net1"}) {
		t.Errorf("after the fix the record holds %v, want eth0 and net1", got)
	}
}
