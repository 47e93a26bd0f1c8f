package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
)

// PodRef names one pod instance.
type PodRef struct {
	Namespace, Name string
	// UID guards against a pod of the same name created later; empty means
	// unguarded (a runtime that does not pass K8S_POD_UID).
	UID types.UID
}

func (p PodRef) key() string { return p.Namespace + "/" + p.Name }

// Defaults of the Patcher's retry policy.
const (
	firstRetry     = 200 * time.Millisecond
	maxRetry       = 30 * time.Second
	giveUpAfter    = 10 * time.Minute
	attemptTimeout = 15 * time.Second
	workers        = 4 // a slow pod does not hold up the others
)

// PodPatcher patches pods (coreapi.Client is one).
type PodPatcher interface {
	PatchPod(ctx context.Context, namespace, name string, pt types.PatchType, patch []byte) error
}

// Patcher writes the network-status annotation of pods in the background.
// Values are coalesced per pod (the latest wins) and retried with
// exponential backoff; memory holds at most one pending value per pod.
type Patcher struct {
	client PodPatcher
	logger *slog.Logger
	events EventRecorder

	firstRetry, maxRetry, giveUpAfter time.Duration

	mu      sync.Mutex
	seq     uint64
	pending map[string]*pendingValue
	queue   workqueue.TypedRateLimitingInterface[string] // nil unless Run is running
	emptied chan struct{}                                // closed once pending is empty; nil unless Drain waits
}

// pendingValue is the latest value not yet written for one pod.
type pendingValue struct {
	pod    PodRef
	value  string
	seq    uint64    // tells this value from a later one for the same pod
	since  time.Time // when Set was called
	failed bool      // a patch of this value has failed already
}

// PatcherOption configures a Patcher.
type PatcherOption func(*Patcher)

// WithEvents makes the Patcher post a NetworkStatusFailed Warning on a pod
// whose annotation it gave up writing while the pod still exists.
func WithEvents(rec EventRecorder) PatcherOption {
	return func(p *Patcher) { p.events = rec }
}

// WithGiveUpAfter sets how long a value is retried before the Patcher gives
// up on it (10 minutes by default).
func WithGiveUpAfter(d time.Duration) PatcherOption {
	return func(p *Patcher) {
		if d > 0 {
			p.giveUpAfter = d
		}
	}
}

// NewPatcher returns a Patcher that writes through client. It does nothing
// until Run is called; Set may be called before.
func NewPatcher(client PodPatcher, logger *slog.Logger, opts ...PatcherOption) *Patcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Patcher{
		client:      client,
		logger:      logger,
		firstRetry:  firstRetry,
		maxRetry:    maxRetry,
		giveUpAfter: giveUpAfter,
		pending:     make(map[string]*pendingValue),
	}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// Set queues value as the annotation of pod and returns at once. A later
// Set for the same namespace/name replaces a value not yet written; the very
// value already pending for the same pod changes nothing (its retries and
// their give-up time go on).
func (p *Patcher) Set(pod PodRef, value string) {
	key := pod.key()
	p.mu.Lock()
	if cur, ok := p.pending[key]; ok && cur.pod == pod && cur.value == value {
		p.mu.Unlock()
		return
	}
	p.seq++
	p.pending[key] = &pendingValue{pod: pod, value: value, seq: p.seq, since: time.Now()}
	q := p.queue
	p.mu.Unlock()
	if q != nil {
		q.Add(key)
	}
}

// Run writes queued values until ctx is done. Call it once. Values still
// pending then are dropped: end ctx after Drain.
func (p *Patcher) Run(ctx context.Context) {
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](p.firstRetry, p.maxRetry),
		workqueue.TypedRateLimitingQueueConfig[string]{},
	)
	p.mu.Lock()
	p.queue = q
	for key := range p.pending {
		q.Add(key)
	}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(workers + 1)
	go func() { // owned by Run, which waits for it: ends when ctx is done
		defer wg.Done()
		<-ctx.Done()
		q.ShutDown()
	}()
	for range workers {
		go func() { // owned by Run: ends when the queue shuts down
			defer wg.Done()
			for p.processNext(ctx, q) {
			}
		}()
	}
	wg.Wait()
	p.mu.Lock()
	p.queue = nil
	p.mu.Unlock()
}

// processNext writes the value of one queued pod; false means stop.
func (p *Patcher) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	key, shutdown := q.Get()
	if shutdown {
		return false
	}
	defer q.Done(key)
	if ctx.Err() != nil {
		return false
	}
	v, ok := p.current(key)
	if !ok {
		q.Forget(key)
		return true
	}
	err := p.patch(ctx, v)
	if err != nil && ctx.Err() != nil {
		return false // shutting down: not the API's fault
	}
	if p.settle(v, err) {
		q.Forget(key)
	} else {
		q.AddRateLimited(key)
	}
	return true
}

// current returns a copy of the pending value for key.
func (p *Patcher) current(key string) (pendingValue, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.pending[key]
	if !ok {
		return pendingValue{}, false
	}
	return *v, true
}

// patch sends one merge patch of the annotation, with the pod's UID as a
// precondition: the API server refuses to change metadata.uid, so a patch
// meant for an older pod of the same name fails instead of landing.
func (p *Patcher) patch(ctx context.Context, v pendingValue) error {
	body, err := patchBody(v.pod.UID, v.value)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	err = p.client.PatchPod(ctx, v.pod.Namespace, v.pod.Name, types.MergePatchType, body)
	return err
}

// patchBody returns the merge patch that sets the annotation to value.
func patchBody(uid types.UID, value string) ([]byte, error) {
	type meta struct {
		UID         types.UID         `json:"uid,omitempty"`
		Annotations map[string]string `json:"annotations"`
	}
	b, err := json.Marshal(struct {
		Metadata meta `json:"metadata"`
	}{meta{UID: uid, Annotations: map[string]string{Annotation: value}}})
	if err != nil {
		return nil, fmt.Errorf("marshal network-status patch: %w", err)
	}
	return b, nil
}

// settle records the outcome of a patch of v and reports whether v is done
// with (written or given up); false means retry.
func (p *Patcher) settle(v pendingValue, err error) bool {
	log := p.logger.With("pod", v.pod.Name, "namespace", v.pod.Namespace)
	if err == nil {
		p.drop(v)
		if v.failed {
			log.Info("network-status written after retries")
		}
		return true
	}
	if reason, final := finalError(err); final {
		p.giveUp(v, reason, err)
		return true
	}
	if time.Since(v.since) >= p.giveUpAfter {
		p.giveUp(v, "retries exhausted", err)
		return true
	}
	if !v.failed {
		p.markFailed(v)
		log.Warn("writing network-status failed, retrying", "error", err)
	}
	return false
}

// Reasons for giving up on a value, as logged.
const (
	reasonPodGone     = "pod is gone"
	reasonPodReplaced = "pod was replaced (uid differs)"
	reasonRejected    = "rejected by the API server"
)

// finalError tells errors that no retry can fix, with a reason to log.
func finalError(err error) (string, bool) {
	switch {
	case apierrors.IsNotFound(err):
		return reasonPodGone, true
	case uidMismatch(err):
		return reasonPodReplaced, true
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return reasonRejected, true
	}
	return "", false
}

// giveUp drops v and says so once: in the log and, while the pod still
// exists, in a NetworkStatusFailed Event.
func (p *Patcher) giveUp(v pendingValue, reason string, err error) {
	p.drop(v)
	log := p.logger.With("pod", v.pod.Name, "namespace", v.pod.Namespace)
	if reason == reasonPodGone || reason == reasonPodReplaced {
		log.Info("giving up on network-status", "reason", reason)
		return
	}
	log.Error("giving up on network-status", "reason", reason, "error", err)
	if p.events != nil {
		p.events.Warning(v.pod, ReasonNetworkStatusFailed, fmt.Sprintf("could not write %s: %v", Annotation, err))
	}
}

// uidMismatch reports whether err is the API server refusing the UID
// precondition: 422 Invalid with a cause on metadata.uid.
func uidMismatch(err error) bool {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsInvalid(err) {
		return false
	}
	details := status.Status().Details
	if details == nil {
		return false
	}
	for _, c := range details.Causes {
		if c.Field == "metadata.uid" {
			return true
		}
	}
	return false
}

// drop forgets v unless a later value for the same pod replaced it.
func (p *Patcher) drop(v pendingValue) {
	key := v.pod.key()
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.pending[key]; ok && cur.seq == v.seq {
		delete(p.pending, key)
	}
	if len(p.pending) == 0 && p.emptied != nil {
		close(p.emptied)
		p.emptied = nil
	}
}

// Drain waits, while Run runs, until every value Set so far (and while it
// waits) is written or given up, or ctx ends. It returns the pods whose value
// is still pending then, sorted; nil once all are done. A daemon that stops
// calls it after its last Set, before it ends Run's context.
func (p *Patcher) Drain(ctx context.Context) []PodRef {
	for {
		p.mu.Lock()
		if len(p.pending) == 0 {
			p.mu.Unlock()
			return nil
		}
		if p.emptied == nil {
			p.emptied = make(chan struct{})
		}
		emptied := p.emptied
		p.mu.Unlock()
		select {
		case <-emptied:
		case <-ctx.Done():
			return p.pendingPods()
		}
	}
}

// pendingPods lists the pods with a value not yet written, sorted by namespace/name.
func (p *Patcher) pendingPods() []PodRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]PodRef, 0, len(p.pending))
	for _, v := range p.pending {
		out = append(out, v.pod)
	}
	slices.SortFunc(out, func(a, b PodRef) int { return strings.Compare(a.key(), b.key()) })
	return out
}

// markFailed notes that v failed once, so later failures are not logged.
func (p *Patcher) markFailed(v pendingValue) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur, ok := p.pending[v.pod.key()]; ok && cur.seq == v.seq {
		cur.failed = true
	}
}
