package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/keylock"
	"github.com/multinet/multinet/internal/policy/compile"
	"github.com/multinet/multinet/internal/policy/firewall"
	"github.com/multinet/multinet/internal/status"
)

// Config is what the node's operator chose.
type Config struct {
	// AcceptICMPEcho lets ICMP and ICMPv6 echo through isolated directions.
	AcceptICMPEcho bool
	// Workers is how many sandboxes are reprogrammed at once after an event. What waits
	// on the kernel (the netlink round trips, a grace period after deletions) is not CPU:
	// waits in different network namespaces overlap, so many workers keep a change
	// across a node's pods short.
	Workers int
}

// Firewall programs a sandbox's table (package firewall): Program whatever the table
// holds, Update from the rules it was last programmed with, changing only what differs.
type Firewall interface {
	Program(netnsPath string, rs []compile.Ruleset, o firewall.Options) error
	Update(netnsPath string, old, cur []compile.Ruleset, o firewall.Options) error
	Remove(netnsPath string) error
}

// PodSource finds this node's pods (the attach manager's informer cache).
type PodSource interface {
	Pod(ctx context.Context, namespace, name, uid string) (*corev1.Pod, error)
}

// Sandboxes reads the checkpoint records of this node's sandboxes.
type Sandboxes interface {
	List() ([]string, error)
	Load(id string) (*checkpoint.Sandbox, error)
}

// Observer is told how the controller fares (metrics); every field may be nil.
type Observer struct {
	// Sync: one sandbox's rules computed and, if they changed, programmed.
	Sync func(took time.Duration, err error)
	// Policies: how many policies are known, how many sandboxes have rules.
	Policies   func(n int)
	Programmed func(sandboxes, allows int)
}

// Deps are the controller's edges.
type Deps struct {
	Pods      PodSource
	Sandboxes Sandboxes
	Firewall  Firewall
	Events    status.EventRecorder
	Log       *slog.Logger
	Observe   Observer
}

// ErrNotReady is returned by Enforce while the policy caches are not synced: the ADD fails
// and is retried, so that no interface starts unfiltered.
var ErrNotReady error = notReady{}

// notReady is ErrNotReady: it tells the ADD path to ask the runtime to try again (TryAgain).
type notReady struct{}

func (notReady) Error() string  { return "MultiNetworkPolicy caches not synced yet" }
func (notReady) TryAgain() bool { return true }

// Controller keeps this node's sandboxes' rules in line with the policies.
type Controller struct {
	cfg Config
	Deps

	locks keylock.Locks // by container ID: one programming of a sandbox at a time
	queue workqueue.TypedRateLimitingInterface[string]

	mu    sync.Mutex
	st    *state
	ready chan struct{} // closed once enforcement is known on (caches synced) or off
	on    bool          // the CRD is served and its caches synced
	// peersSynced tells whether the pods of other nodes are all known, while watched
	peersSynced func() bool
	// lastErr is why the caches are not synced yet (the CRD could not be looked up)
	lastErr error
	kick    chan struct{} // policies changed: are the pods of other nodes still needed?
}

// New builds a controller; Run starts it.
func New(cfg Config, deps Deps) *Controller {
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	return &Controller{cfg: cfg, Deps: deps, st: newState(), ready: make(chan struct{}), kick: make(chan struct{}, 1),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "policy"})}
}

// Enforce programs the rules of the sandbox's interfaces as its record has them, before
// the ADD or plug that changed them returns. An error means the interfaces may be
// unprotected: the caller fails (and undoes) the ADD or plug. It waits for the policy
// caches to sync, up to readyWait (waitReady).
func (c *Controller) Enforce(ctx context.Context, rec *checkpoint.Sandbox) error {
	if rec.PodName == "" {
		return nil
	}
	if err := c.waitReady(ctx); err != nil {
		return err
	}
	if !c.enabled() {
		return nil
	}
	pod, err := c.Pods.Pod(ctx, rec.PodNamespace, rec.PodName, rec.PodUID)
	if err != nil {
		return fmt.Errorf("network policy: %w", err)
	}
	sb := sandboxOf(rec, pod)
	c.mu.Lock()
	old := c.st.sandboxes[sb.id]
	c.enqueue(c.st.setSandbox(sb.id, sb)...)
	c.mu.Unlock()
	err = c.sync(sb.id)
	if err != nil && adds(old, sb) {
		c.undo(sb, old)
	}
	return err
}

// undo puts back what was known of a sandbox before an ADD or plug whose rules could not
// be programmed: the caller undoes the attachment, so neither its interface nor its
// addresses (released, soon another pod's) may stay, as peers, in the rules of other pods.
func (c *Controller) undo(sb, old *sandbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.sandboxes[sb.id] != sb {
		return // replaced meanwhile: the newer record holds
	}
	// old takes over what is known of the table (unknown since the failed attempt)
	c.enqueue(c.st.setSandbox(sb.id, old)...)
}

// adds tells whether cur has an interface or an address old has not: an ADD or a plug,
// which the caller undoes on failure (unlike an unplug).
func adds(old, cur *sandbox) bool {
	if old == nil {
		return true
	}
	for _, i := range cur.ifaces {
		if !slices.Contains(old.ifaces, i) {
			return true
		}
	}
	for network, addrs := range cur.pod.Addresses {
		for _, a := range addrs {
			if !slices.Contains(old.pod.Addresses[network], a) {
				return true
			}
		}
	}
	return false
}

// Forget drops a sandbox DELed: the pods that had it as a peer lose its addresses. Its
// table is left to go with its network namespace: removing it would cost the DEL a
// transaction, and the kernel a grace period to free what it deleted, for nothing.
func (c *Controller) Forget(containerID, _ string) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, had := c.st.sandboxes[containerID]; had {
		c.enqueue(c.st.setSandbox(containerID, nil)...)
	}
}

// enabled tells whether policies are enforced (the CRD served, its caches synced).
func (c *Controller) enabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.on
}

func (c *Controller) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyWait)
	defer cancel()
	select {
	case <-c.ready:
	case <-ctx.Done():
		c.mu.Lock()
		cause := c.lastErr
		c.mu.Unlock()
		if cause != nil {
			return fmt.Errorf("network policy: %w: %w", ErrNotReady, cause)
		}
		return fmt.Errorf("network policy: %w", ErrNotReady)
	}
	// The pods of other nodes only add peers, so allows: rules programmed before that cache
	// is filled are stricter than the policies, never looser, and are corrected once it is.
	for !c.peersFilled() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// readyWait bounds how long an ADD waits for the policy caches before it fails (the runtime
// retries it) or, for the pods of other nodes, goes on with the peers known so far.
const readyWait = 10 * time.Second

// peersFilled tells whether the pods of other nodes are known, where they are needed.
func (c *Controller) peersFilled() bool {
	c.mu.Lock()
	synced := c.peersSynced
	on := c.on
	c.mu.Unlock()
	return !on || synced == nil || synced()
}

// enqueue asks for the sandboxes' rules to be computed again. Called with mu held.
func (c *Controller) enqueue(ids ...string) {
	for _, id := range ids {
		c.queue.Add(id)
	}
}

// sync computes a sandbox's rules and programs them if they changed.
func (c *Controller) sync(id string) (err error) {
	defer c.locks.Lock(id)()
	start := time.Now()
	c.mu.Lock()
	sb := c.st.sandboxes[id]
	if sb == nil {
		c.mu.Unlock()
		return nil
	}
	rs := compile.Rules(sb.pod, sb.ifaces, c.st.policiesIn(sb.pod.Namespace), c.st.view())
	same := !sb.stale && compile.Equal(sb.programmed, rs)
	// Rules programmed, not stale, are what the table holds: Update changes only what
	// differs. A sandbox new to the controller may be in a netns with a table of before
	// (an ADD retried after its DEL): Program replaces whatever is there.
	old, known := sb.programmed, !sb.stale && sb.programmed != nil
	c.mu.Unlock()
	if same {
		return nil
	}
	defer func() {
		if c.Observe.Sync != nil {
			c.Observe.Sync(time.Since(start), err)
		}
	}()
	o := firewall.Options{AcceptICMPEcho: c.cfg.AcceptICMPEcho}
	if known {
		err = c.Firewall.Update(sb.netns, old, rs, o)
	} else {
		err = c.Firewall.Program(sb.netns, rs, o)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.sandboxes[id] != sb {
		return err // replaced meanwhile: the new one is queued
	}
	sb.stale = err != nil
	if err != nil {
		return fmt.Errorf("pod %s/%s: network policy: %w", sb.pod.Namespace, sb.pod.Name, err)
	}
	sb.programmed = rs
	c.observeProgrammed()
	return nil
}

// observeProgrammed reports how many sandboxes have rules, and how many allow entries they
// hold in all. Called with mu held.
func (c *Controller) observeProgrammed() {
	if c.Observe.Programmed == nil {
		return
	}
	sandboxes, allows := 0, 0
	for _, sb := range c.st.sandboxes {
		if len(sb.programmed) > 0 {
			sandboxes++
		}
		for _, rs := range sb.programmed {
			for _, d := range []*compile.Direction{rs.Ingress, rs.Egress} {
				if d != nil {
					allows += len(d.Allow)
				}
			}
		}
	}
	c.Observe.Programmed(sandboxes, allows)
}

// work reprograms queued sandboxes until the queue shuts down; a failure is retried with
// back-off, with a Warning on the pod the first time.
func (c *Controller) work() {
	for {
		id, stop := c.queue.Get()
		if stop {
			return
		}
		err := c.sync(id)
		switch {
		case err == nil, errors.Is(err, firewall.ErrNoNetns):
			c.queue.Forget(id)
		default:
			if c.queue.NumRequeues(id) == 0 {
				c.warn(id, err)
			}
			c.queue.AddRateLimited(id)
		}
		c.queue.Done(id)
	}
}

func (c *Controller) warn(id string, err error) {
	c.Log.Error("network policy not programmed; retrying", "containerID", id, "err", err)
	c.mu.Lock()
	sb := c.st.sandboxes[id]
	c.mu.Unlock()
	if sb != nil && c.Events != nil {
		c.Events.Warning(status.PodRef{Namespace: sb.pod.Namespace, Name: sb.pod.Name, UID: k8stypes.UID(sb.uid)}, status.ReasonNetworkPolicyFailed, err.Error())
	}
}

// Kernel is the Firewall of a real node: package firewall's nftables.
type Kernel struct{}

// Program implements Firewall.
func (Kernel) Program(netnsPath string, rs []compile.Ruleset, o firewall.Options) error {
	return firewall.Program(netnsPath, rs, o)
}

// Update implements Firewall.
func (Kernel) Update(netnsPath string, old, cur []compile.Ruleset, o firewall.Options) error {
	return firewall.Update(netnsPath, old, cur, o)
}

// Remove implements Firewall.
func (Kernel) Remove(netnsPath string) error { return firewall.Remove(netnsPath) }
