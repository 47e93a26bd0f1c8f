package status

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/multinet/multinet/internal/coreapi/coreapitest"
)

var web0 = PodRef{Namespace: "default", Name: "web-0", UID: "uid-1"}

func podObj(ref PodRef) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, UID: ref.UID}}
}

// logBuffer collects log lines written from the Patcher's workers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// count returns how many lines contain msg.
func (b *logBuffer) count(msg string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), `"msg":"`+msg+`"`)
}

// has reports whether any line contains s.
func (b *logBuffer) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Contains(b.buf.String(), s)
}

// fastPatcher returns a Patcher with short retries, its log, and starts it
// for the duration of the test.
func fastPatcher(t *testing.T, client *fake.Clientset, opts ...PatcherOption) (*Patcher, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	p := NewPatcher(coreapitest.Clientset{Interface: client}, slog.New(slog.NewJSONHandler(logs, nil)), opts...)
	p.firstRetry, p.maxRetry = 5*time.Millisecond, 20*time.Millisecond
	return p, logs
}

// run starts p.Run and stops it, bounded, when the test ends.
func run(t *testing.T, p *Patcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context was canceled")
		}
	})
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// idle reports whether p has no value left to write.
func (p *Patcher) idle() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) == 0
}

func annotationOf(t *testing.T, client *fake.Clientset, ref PodRef) string {
	t.Helper()
	pod, err := client.CoreV1().Pods(ref.Namespace).Get(context.Background(), ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod: %v", err)
	}
	return pod.Annotations[Annotation]
}

func patches(client *fake.Clientset) []k8stesting.PatchAction {
	var out []k8stesting.PatchAction
	for _, a := range client.Actions() {
		if pa, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "pods" {
			out = append(out, pa)
		}
	}
	return out
}

// enforceUID makes the fake refuse a patch whose metadata.uid differs from
// the stored pod's, with the error a real API server returns (422, cause
// on metadata.uid); the real behaviour is proven against kube-apiserver.
func enforceUID(client *fake.Clientset) {
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pa := a.(k8stesting.PatchAction)
		var body struct {
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(pa.GetPatch(), &body); err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		obj, err := client.Tracker().Get(a.GetResource(), pa.GetNamespace(), pa.GetName())
		if err != nil || body.Metadata.UID == "" || string(obj.(*corev1.Pod).UID) == body.Metadata.UID {
			return false, nil, nil
		}
		return true, nil, apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, pa.GetName(), field.ErrorList{
			field.Invalid(field.NewPath("metadata", "uid"), body.Metadata.UID, "field is immutable"),
		})
	})
}

func TestSetWritesTheAnnotationWithUIDPrecondition(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	p, _ := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, `[{"name":"cbr0"}]`)
	waitFor(t, "the annotation is written", func() bool { return annotationOf(t, client, web0) == `[{"name":"cbr0"}]` })

	ps := patches(client)
	if len(ps) != 1 || ps[0].GetPatchType() != "application/merge-patch+json" {
		t.Fatalf("patches = %v, want one merge patch", ps)
	}
	if !strings.Contains(string(ps[0].GetPatch()), `"uid":"uid-1"`) {
		t.Errorf("patch %s does not carry the pod's uid", ps[0].GetPatch())
	}
}

func TestPatchRetriesUntilItLands(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	var calls atomic.Int32
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if calls.Add(1) <= 2 {
			return true, nil, apierrors.NewServiceUnavailable("apiserver is starting")
		}
		return false, nil, nil
	})
	p, logs := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, "v1")
	waitFor(t, "the annotation is written", func() bool { return annotationOf(t, client, web0) == "v1" })

	if n := len(patches(client)); n != 3 {
		t.Errorf("patches = %d, want 3", n)
	}
	if n := logs.count("writing network-status failed, retrying"); n != 1 {
		t.Errorf("failure logged %d times, want once", n)
	}
}

func TestPatchGivesUpOnAReplacedPod(t *testing.T) {
	newPod := PodRef{Namespace: web0.Namespace, Name: web0.Name, UID: "uid-2"}
	client := fake.NewClientset(podObj(newPod))
	enforceUID(client)
	p, logs := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, "for the old pod")
	waitFor(t, "the patcher gives up", p.idle)

	if got := annotationOf(t, client, newPod); got != "" {
		t.Errorf("new pod got the old pod's annotation %q", got)
	}
	if n := len(patches(client)); n != 1 {
		t.Errorf("patches = %d, want 1 (no retry)", n)
	}
	if n := logs.count("giving up on network-status"); n != 1 || !logs.has(reasonPodReplaced) {
		t.Errorf("give-up logged %d times, want once with reason %q", n, reasonPodReplaced)
	}
}

func TestPatchGivesUpOnAMissingPod(t *testing.T) {
	client := fake.NewClientset()
	p, logs := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, "v1")
	waitFor(t, "the patcher gives up", p.idle)

	if n := len(patches(client)); n != 1 {
		t.Errorf("patches = %d, want 1 (no retry)", n)
	}
	if n := logs.count("giving up on network-status"); n != 1 || !logs.has(reasonPodGone) {
		t.Errorf("give-up logged %d times, want once with reason %q", n, reasonPodGone)
	}
}

func TestPatchGivesUpAfterItsDeadline(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(errTest)
	})
	events := &recordedEvents{}
	p, logs := fastPatcher(t, client, WithEvents(events), WithGiveUpAfter(100*time.Millisecond))
	run(t, p)
	p.Set(web0, "v1")
	waitFor(t, "the patcher gives up", p.idle)

	if n := len(patches(client)); n < 3 {
		t.Errorf("patches = %d, want several retries", n)
	}
	if f, g := logs.count("writing network-status failed, retrying"), logs.count("giving up on network-status"); f != 1 || g != 1 {
		t.Errorf("logged %d failures and %d give-ups, want one each", f, g)
	}
	if got := events.reasons(); len(got) != 1 || got[0] != ReasonNetworkStatusFailed {
		t.Errorf("events = %v, want one %s", got, ReasonNetworkStatusFailed)
	}
}

func TestSetsForOnePodCoalesce(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	p, _ := fastPatcher(t, client)
	for i := range 100 {
		p.Set(web0, strings.Repeat("x", i))
	}
	run(t, p)
	waitFor(t, "the patcher is idle", p.idle)

	if n := len(patches(client)); n != 1 {
		t.Errorf("patches = %d, want 1", n)
	}
	if got := annotationOf(t, client, web0); got != strings.Repeat("x", 99) {
		t.Errorf("annotation = %q, want the latest value", got)
	}
}

func TestLatestValueWinsWhileRunning(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	p, _ := fastPatcher(t, client)
	run(t, p)
	for i := range 50 {
		p.Set(web0, strings.Repeat("y", i+1))
	}
	waitFor(t, "the latest value is written", func() bool { return annotationOf(t, client, web0) == strings.Repeat("y", 50) })
	waitFor(t, "the patcher is idle", p.idle)
	if n := len(patches(client)); n > 50 {
		t.Errorf("patches = %d, want at most one per Set", n)
	}
}

// blockPatches makes every pod PATCH wait until the returned release is called
// (or the test ends); entered receives the pod's name as each one starts.
func blockPatches(t *testing.T, client *fake.Clientset) (entered <-chan string, release func()) {
	t.Helper()
	in, open := make(chan string, 16), make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(open) }) }
	t.Cleanup(release)
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		in <- a.(k8stesting.PatchAction).GetName()
		<-open
		return false, nil, nil
	})
	return in, release
}

// TestDrainWritesWhatIsPending: a daemon stopping drains the Patcher after its last Set, a
// value Set while the drain already waits included; only then does Run's context end.
func TestDrainWritesWhatIsPending(t *testing.T) {
	web1 := PodRef{Namespace: "default", Name: "web-1", UID: "uid-3"}
	client := fake.NewClientset(podObj(web0), podObj(web1))
	entered, release := blockPatches(t, client)
	p, _ := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, "v0")
	<-entered // web-0's PATCH is in flight

	drained := make(chan []PodRef, 1)
	go func() { drained <- p.Drain(context.Background()) }()
	p.Set(web1, "v1") // an ADD that finished during the shutdown
	select {
	case left := <-drained:
		t.Fatalf("Drain returned %v while a PATCH was in flight", left)
	default:
	}
	release()
	if left := <-drained; left != nil {
		t.Fatalf("Drain left %v, want nothing", left)
	}
	if a, b := annotationOf(t, client, web0), annotationOf(t, client, web1); a != "v0" || b != "v1" {
		t.Errorf("annotations after Drain = %q, %q; want v0, v1", a, b)
	}
}

// TestDrainStopsAtItsDeadline: with the API server failing, Drain returns when its context
// ends and names the pods whose value was not written.
func TestDrainStopsAtItsDeadline(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	attempts := make(chan struct{}, 100)
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		select {
		case attempts <- struct{}{}:
		default:
		}
		return true, nil, apierrors.NewServiceUnavailable("apiserver is stopping")
	})
	p, _ := fastPatcher(t, client)
	run(t, p)
	p.Set(web0, "v1")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-attempts; cancel() }() // the deadline passes after a failed attempt
	if left := p.Drain(ctx); len(left) != 1 || left[0] != web0 {
		t.Fatalf("Drain left %v, want [%v]", left, web0)
	}
}

// TestSettingThePendingValueAgainKeepsItsRetries: a republish of the value already pending
// for the pod neither restarts its give-up time nor adds a PATCH.
func TestSettingThePendingValueAgainKeepsItsRetries(t *testing.T) {
	client := fake.NewClientset(podObj(web0))
	p, _ := fastPatcher(t, client)
	p.Set(web0, "v1")
	first := *p.pending[web0.key()]
	p.Set(web0, "v1")
	if again := *p.pending[web0.key()]; again != first {
		t.Errorf("pending value after the same Set = %+v, want it unchanged %+v", again, first)
	}
	p.Set(web0, "v2")
	if next := p.pending[web0.key()]; next.value != "v2" || next.seq == first.seq {
		t.Errorf("a new value did not replace the pending one: %+v", next)
	}
	run(t, p)
	waitFor(t, "the patcher is idle", p.idle)
	if n := len(patches(client)); n != 1 {
		t.Errorf("patches = %d, want 1", n)
	}
}

// recordedEvents is an EventRecorder that keeps what it was given.
type recordedEvents struct {
	mu   sync.Mutex
	list []string
}

func (r *recordedEvents) Warning(_ PodRef, reason, _ string) { r.add(reason) }
func (r *recordedEvents) Normal(_ PodRef, reason, _ string)  { r.add(reason) }

func (r *recordedEvents) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, reason)
}

func (r *recordedEvents) reasons() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.list...)
}

var errTest = testError("etcd is slow")

type testError string

func (e testError) Error() string { return string(e) }
