package attach

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
	"github.com/multinet/multinet/internal/delegate"
	"github.com/multinet/multinet/internal/plan"
	"github.com/multinet/multinet/internal/status"
)

// fakeDelegates records the order of calls and how many ran at once. A call on an interface
// in gate waits until every interface of gate has been called (or ctx ends): the proof that
// they run at once, without a timed assertion.
type fakeDelegates struct {
	mu       sync.Mutex
	calls    []string // "ADD eth0", "DEL net1", ... in the order they started
	inFlight []string
	overlaps map[string][]string // interface -> the others in flight when its ADD started
	gate     map[string]bool
	arrived  int
	open     chan struct{}
	failAdd  map[string]error
	failDel  map[string]error
	// expireOn names an interface whose ADD outlives the request: it calls expire (which ends
	// the request's context) and fails with the context's error, as a plugin killed at the
	// deadline does.
	expireOn string
	expire   func()
}

func newFake(gate ...string) *fakeDelegates {
	f := &fakeDelegates{overlaps: map[string][]string{}, gate: map[string]bool{}, open: make(chan struct{}),
		failAdd: map[string]error{}, failDel: map[string]error{}}
	for _, g := range gate {
		f.gate[g] = true
	}
	if len(gate) == 0 {
		close(f.open)
	}
	return f
}

func (f *fakeDelegates) enter(verb, ifname string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, verb+" "+ifname)
	if verb == "ADD" {
		f.overlaps[ifname] = slices.Clone(f.inFlight)
	}
	f.inFlight = append(f.inFlight, ifname)
	if f.gate[ifname] {
		if f.arrived++; f.arrived == len(f.gate) {
			close(f.open)
		}
	}
}

func (f *fakeDelegates) leave(ifname string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight = slices.DeleteFunc(f.inFlight, func(s string) bool { return s == ifname })
}

func (f *fakeDelegates) wait(ctx context.Context, ifname string) error {
	if !f.gate[ifname] {
		return nil
	}
	select {
	case <-f.open:
		return nil
	case <-ctx.Done():
		return errors.New("the gated delegates never ran at once")
	}
}

func (f *fakeDelegates) Add(ctx context.Context, inv *delegate.Invocation) (types.Result, error) {
	f.enter("ADD", inv.IfName)
	defer f.leave(inv.IfName)
	if err := f.wait(ctx, inv.IfName); err != nil {
		return nil, err
	}
	if err := f.failAdd[inv.IfName]; err != nil {
		return nil, err
	}
	if inv.IfName == f.expireOn {
		f.expire()
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &types100.Result{CNIVersion: "1.0.0", Interfaces: []*types100.Interface{{Name: inv.IfName, Sandbox: inv.Netns}},
		IPs: []*types100.IPConfig{{Address: net.IPNet{IP: net.IPv4(10, 0, 0, 1), Mask: net.CIDRMask(24, 32)}}}}, nil
}

// Del fails at once when ctx has ended, as a plugin run with exec.CommandContext does.
func (f *fakeDelegates) Del(ctx context.Context, inv *delegate.Invocation) error {
	f.enter("DEL", inv.IfName)
	defer f.leave(inv.IfName)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := f.wait(ctx, inv.IfName); err != nil {
		return err
	}
	return f.failDel[inv.IfName]
}

func (f *fakeDelegates) Check(context.Context, *delegate.Invocation) error { return nil }
func (f *fakeDelegates) GC(context.Context, []byte, []types.GCAttachment) error {
	return nil
}
func (f *fakeDelegates) Status(context.Context, []byte) error { return nil }

type fakeEvents struct {
	mu       sync.Mutex
	reasons  []string
	messages []string // "reason: message" of each Event
}

func (e *fakeEvents) Warning(_ status.PodRef, reason, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reasons = append(e.reasons, reason)
	e.messages = append(e.messages, reason+": "+message)
}

// warnings are the Events posted, "reason: message".
func (e *fakeEvents) warnings() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.messages)
}
func (e *fakeEvents) Normal(pod status.PodRef, reason, message string) {
	e.Warning(pod, reason, message)
}

type world struct {
	m    *Manager
	f    *fakeDelegates
	ev   *fakeEvents
	req  *request
	ctx  context.Context
	plan []plan.Delegate
}

// newWorld plans eth0 (the default network) and net1..net3; serial names those whose NAD
// opted out of parallel attach.
func newWorld(t *testing.T, parallel bool, f *fakeDelegates, serial ...string) *world {
	t.Helper()
	store, err := checkpoint.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ev := &fakeEvents{}
	m := New(Config{ParallelAttach: parallel}, Deps{Delegates: f, Store: store.WithoutSync(), Events: ev,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pod := plan.Pod{Namespace: "ns", Name: "p", UID: "u"}
	ds := []plan.Delegate{{Network: "cluster", Default: true, IfName: "eth0", ConfList: []byte("{}")}}
	for _, n := range []string{"net1", "net2", "net3"} {
		ds = append(ds, plan.Delegate{Network: "ns/" + n, IfName: n, ConfList: []byte("{}"), Serial: slices.Contains(serial, n)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req := &request{Request: &cniapi.Request{Command: "ADD", ContainerID: "c1", Netns: "/var/run/netns/x"}, pod: pod}
	return &world{m: m, f: f, ev: ev, req: req, ctx: ctx, plan: ds}
}

func ifnamesOf(sb *checkpoint.Sandbox) []string {
	var out []string
	for _, a := range sb.Attachments {
		out = append(out, a.IfName)
	}
	return out
}

// TestSecondariesAttachAtOnceInPlannedOrder: net1..net3 run at once (the gate opens only when
// all three are called), after eth0 alone; the record keeps the planned order, all added.
// DEL runs them at once again, and eth0 last.
func TestSecondariesAttachAtOnceInPlannedOrder(t *testing.T) {
	w := newWorld(t, true, newFake("net1", "net2", "net3"))
	sb, err := w.m.attachAll(w.ctx, w.req, w.plan)
	if err != nil {
		t.Fatal(err)
	}
	if got := ifnamesOf(sb); !slices.Equal(got, []string{"eth0", "net1", "net2", "net3"}) {
		t.Fatalf("record order %v", got)
	}
	for _, a := range sb.Attachments {
		if a.State != checkpoint.Added || len(a.Result) == 0 {
			t.Errorf("%s: state %s, result %s", a.IfName, a.State, a.Result)
		}
	}
	if w.f.calls[0] != "ADD eth0" || len(w.f.overlaps["eth0"]) != 0 {
		t.Errorf("eth0 not first and alone: calls %v, beside %v", w.f.calls, w.f.overlaps["eth0"])
	}
	w.f.calls, w.f.arrived, w.f.open = nil, 0, make(chan struct{})
	if err := w.m.delSandbox(w.ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	if len(w.f.calls) != 4 || w.f.calls[3] != "DEL eth0" {
		t.Errorf("DEL calls %v, want the secondaries at once, then eth0", w.f.calls)
	}
	if _, err := w.m.Store.Load("c1"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("record after DEL: %v", err)
	}
}

// TestRollbackOfParallelStage: net2 fails while net1 and net3 run beside it; all three and eth0
// are DELed (eth0 last), the record goes, and the error is net2's own.
func TestRollbackOfParallelStage(t *testing.T) {
	f := newFake("net1", "net2", "net3")
	f.failAdd["net2"] = &types.Error{Code: 7, Msg: "no such knob"}
	w := newWorld(t, true, f)
	_, err := w.m.attachAll(w.ctx, w.req, w.plan)
	var te *types.Error
	if err == nil || !errors.As(err, &te) || te.Msg != "no such knob" || ToCNI(err).Code != 7 {
		t.Fatalf("ADD = %v, want net2's error", err)
	}
	var dels []string
	for _, c := range f.calls {
		if v, ok := strings.CutPrefix(c, "DEL "); ok {
			dels = append(dels, v)
		}
	}
	if len(dels) != 4 || dels[3] != "eth0" || !sameSet(dels[:3], []string{"net1", "net2", "net3"}) {
		t.Errorf("rollback DELs %v, want net1..net3 then eth0", dels)
	}
	if _, err := w.m.Store.Load("c1"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Errorf("record after rollback: %v", err)
	}
}

// TestRollbackOutlivesTheRequest: the request's deadline passes while net2's ADD runs; the
// rollback still DELs net2, net1 and eth0 (with a context of its own), and the record goes.
func TestRollbackOutlivesTheRequest(t *testing.T) {
	f := newFake()
	w := newWorld(t, false, f)
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	f.expireOn, f.expire = "net2", cancel
	if _, err := w.m.attachAll(ctx, w.req, w.plan); !errors.Is(err, context.Canceled) {
		t.Fatalf("ADD = %v, want the request's context error", err)
	}
	want := []string{"ADD eth0", "ADD net1", "ADD net2", "DEL net2", "DEL net1", "DEL eth0"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls %v, want %v", f.calls, want)
	}
	if sb, err := w.m.Store.Load("c1"); err == nil {
		t.Errorf("record after the rollback holds %v, want none (every DEL succeeded)", ifnamesOf(sb))
	} else if !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatal(err)
	}
}

// TestRollbackKeepsOnlyATransientFailure: net2's ADD fails and its DEL fails transiently: only
// its record stays; a permanent DEL failure of net3, whose ADD also failed, drops it with an Event.
func TestRollbackKeepsOnlyATransientFailure(t *testing.T) {
	f := newFake()
	w := newWorld(t, true, f)
	addErr := &types.Error{Code: 999, Msg: "bad args"}
	f.failAdd["net2"] = &types.Error{Code: 11, Msg: "busy"}
	f.failDel["net2"] = &types.Error{Code: 11, Msg: "not now"}
	f.failAdd["net3"], f.failDel["net3"] = addErr, addErr
	if _, err := w.m.attachAll(w.ctx, w.req, w.plan); err == nil {
		t.Fatal("ADD succeeded")
	}
	sb, err := w.m.Store.Load("c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := ifnamesOf(sb); !slices.Equal(got, []string{"net2"}) {
		t.Errorf("record after rollback holds %v, want net2 only", got)
	}
	if !slices.Equal(w.ev.reasons, []string{status.ReasonAttachmentDropped}) {
		t.Errorf("events %v, want one AttachmentDropped", w.ev.reasons)
	}
}

// TestSerialNetworkRunsAlone: net2's NAD opted out: net1 and net3 run at once, then net2 alone;
// the record keeps the planned order. DEL runs net2 alone first.
func TestSerialNetworkRunsAlone(t *testing.T) {
	w := newWorld(t, true, newFake("net1", "net3"), "net2")
	sb, err := w.m.attachAll(w.ctx, w.req, w.plan)
	if err != nil {
		t.Fatal(err)
	}
	if got := ifnamesOf(sb); !slices.Equal(got, []string{"eth0", "net1", "net2", "net3"}) {
		t.Fatalf("record order %v", got)
	}
	if w.f.calls[3] != "ADD net2" || len(w.f.overlaps["net2"]) != 0 {
		t.Errorf("net2 not last and alone: calls %v, beside %v", w.f.calls, w.f.overlaps["net2"])
	}
	w.f.calls, w.f.arrived, w.f.open = nil, 0, make(chan struct{})
	if err := w.m.delSandbox(w.ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	if w.f.calls[0] != "DEL net2" || w.f.calls[3] != "DEL eth0" {
		t.Errorf("DEL calls %v, want net2 first, eth0 last", w.f.calls)
	}
}

// TestParallelAttachOff: one delegate at a time, in planned order; DEL in reverse.
func TestParallelAttachOff(t *testing.T) {
	w := newWorld(t, false, newFake())
	if _, err := w.m.attachAll(w.ctx, w.req, w.plan); err != nil {
		t.Fatal(err)
	}
	if err := w.m.delSandbox(w.ctx, "c1", ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD eth0", "ADD net1", "ADD net2", "ADD net3", "DEL net3", "DEL net2", "DEL net1", "DEL eth0"}
	if !slices.Equal(w.f.calls, want) {
		t.Errorf("calls %v, want %v", w.f.calls, want)
	}
	for ifname, beside := range w.f.overlaps {
		if len(beside) != 0 {
			t.Errorf("%s ran beside %v", ifname, beside)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestAttachAnnotation: a NAD's multinet.io/attach says serial or parallel; anything else is
// refused as an invalid network config, naming the network.
func TestAttachAnnotation(t *testing.T) {
	for value, want := range map[string]bool{"": false, "parallel": false, "serial": true, "alone": false} {
		serial, err := serialNAD("ns/n", map[string]string{AttachAnnotation: value})
		if value == "alone" {
			if err == nil || ToCNI(err).Code != types.ErrInvalidNetworkConfig || !strings.Contains(err.Error(), "ns/n") {
				t.Errorf("%q: err %v, want an invalid network config naming ns/n", value, err)
			}
			continue
		}
		if err != nil || serial != want {
			t.Errorf("%q: serial %v, %v; want %v", value, serial, err, want)
		}
	}
}
