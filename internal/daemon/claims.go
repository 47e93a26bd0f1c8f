package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8stypes "k8s.io/apimachinery/pkg/types"
	resourceclient "k8s.io/client-go/kubernetes/typed/resource/v1"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/atomicfile"
	"github.com/multinet/multinet/internal/attach"
	"github.com/multinet/multinet/internal/dra/claims"
	"github.com/multinet/multinet/internal/keylock"
)

// claimsClient reads ResourceClaims and ResourceSlices and writes claim status through the
// resource.k8s.io/v1 API. It is asked only for pods with ResourceClaims, which exist only
// where that API is served: nothing is read for any other pod.
//
// A status write that fails while it may pass later (the API server unreachable, overloaded)
// is kept, one file per claim in dir, and retried in the background until it passes, also
// after a restart: a DEL while the API server is down still clears its claim's entries once
// the API server is back. A later write of the same claim replaces the kept one.
type claimsClient struct {
	client  resourceclient.ResourceV1Interface
	manager string // the field manager of this node's status entries
	dir     string // the status writes still to retry
	log     *slog.Logger
	locks   keylock.Locks // by claim file: one write of a claim at a time
	kick    chan struct{} // a write was kept: retry soon
	// apply writes a claim's entries (the API server's apply; a test's stand-in).
	apply func(ctx context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error
}

// pendingStatus is a kept status write.
type pendingStatus struct {
	Namespace string                             `json:"namespace"`
	Name      string                             `json:"name"`
	UID       string                             `json:"uid,omitempty"`
	Entries   []resourcev1.AllocatedDeviceStatus `json:"entries"`
}

// Retry periods of the kept status writes: the first soon after a failure, then doubling.
const (
	claimRetryFirst = time.Second
	claimRetryMax   = 30 * time.Second
)

// startDRA gives mgr its DRA client (device-backed networks), and retries its kept status
// writes until ctx ends.
func startDRA(ctx context.Context, o Options, cfg *rest.Config, mgr *attach.Manager, log *slog.Logger) error {
	c, err := newClaims(o, cfg, log)
	if err != nil || c == nil {
		return err
	}
	mgr.Claims = c
	go labelled(ctx, "dra", c.retry)
	return nil
}

// newClaims returns the ADD path's DRA client, or nil when --dra is off.
func newClaims(o Options, cfg *rest.Config, log *slog.Logger) (*claimsClient, error) {
	if !o.DRA {
		log.Info("DRA off: device-backed networks are attached as their NetworkAttachmentDefinition's config says")
		return nil, nil
	}
	client, err := resourceclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("resource.k8s.io/v1 client: %w", err)
	}
	c := &claimsClient{client: client, manager: claimFieldManager(o.NodeName), dir: filepath.Join(o.StateDir, "claim-status"),
		log: log, kick: make(chan struct{}, 1)}
	c.apply = c.applyStatus
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("claim status dir: %w", err)
	}
	atomicfile.RemoveTemps(c.dir)
	return c, nil
}

// claimFieldManager is the field manager of the claim status entries a node's multinetd
// writes: one per node, so that two nodes never take each other's entries.
func claimFieldManager(node string) string {
	m := "multinet.io/" + node
	if len(m) > 128 { // the API's limit on a field manager's name
		m = m[:128]
	}
	return m
}

func (c *claimsClient) ResourceClaim(ctx context.Context, namespace, name string) (*resourcev1.ResourceClaim, error) {
	return c.client.ResourceClaims(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (c *claimsClient) ResourceSlices(ctx context.Context, driver string) ([]*resourcev1.ResourceSlice, error) {
	list, err := c.client.ResourceSlices().List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.driver", driver).String()})
	if err != nil {
		return nil, err
	}
	out := make([]*resourcev1.ResourceSlice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// ApplyStatus writes the claim's entries; a failure that may pass later is kept and retried
// (the error says so).
func (c *claimsClient) ApplyStatus(ctx context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error {
	file := filepath.Join(c.dir, claim.Namespace+"_"+claim.Name+".json")
	defer c.locks.Lock(file)()
	err := c.apply(ctx, claim, entries)
	if err == nil || !retriable(err) {
		if rerr := os.Remove(file); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			c.log.Warn("a kept claim status write could not be removed; it is retried, and applies what was asked last", "file", file, "err", rerr)
		}
		return err
	}
	data, merr := json.Marshal(pendingStatus{Namespace: claim.Namespace, Name: claim.Name, UID: string(claim.UID), Entries: entries})
	if merr == nil {
		merr = atomicfile.Write(file, data, 0o600, true)
	}
	if merr != nil {
		return errors.Join(err, fmt.Errorf("keep it for a retry: %w", merr))
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return fmt.Errorf("%w (kept in %s and retried until it passes)", err, file)
}

func (c *claimsClient) applyStatus(ctx context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error {
	_, err := c.client.ResourceClaims(claim.Namespace).ApplyStatus(ctx, claims.StatusApply(claim, entries...),
		metav1.ApplyOptions{FieldManager: c.manager, Force: true})
	if apierrors.IsNotFound(err) { // the claim is gone, and its status with it
		return nil
	}
	return err
}

// retriable tells whether a failed status write may pass later: not when the API server
// refused it for what it is (invalid: a device no longer allocated; forbidden).
func retriable(err error) bool {
	return !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) && !apierrors.IsBadRequest(err)
}

// retry writes the kept status writes, soon after one was kept and then at a doubling
// period while some fail, until ctx ends; at start, those kept before a restart.
func (c *claimsClient) retry(ctx context.Context) {
	wait := claimRetryFirst
	for {
		left := c.retryKept(ctx)
		if left == 0 {
			wait = claimRetryFirst
			select {
			case <-ctx.Done():
				return
			case <-c.kick:
			}
		} else {
			wait = min(2*wait, claimRetryMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// retryKept writes each kept status write once; it returns how many are still kept.
func (c *claimsClient) retryKept(ctx context.Context) int {
	files, err := filepath.Glob(filepath.Join(c.dir, "*.json"))
	if err != nil {
		c.log.Error("claim status writes to retry not listed", "dir", c.dir, "err", err)
		return 1
	}
	left := 0
	for _, file := range files {
		if !c.retryOne(ctx, file) {
			left++
		}
	}
	return left
}

// retryOne writes a kept status write; it tells whether it is done (written, or given up).
func (c *claimsClient) retryOne(ctx context.Context, file string) bool {
	defer c.locks.Lock(file)()
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) { // written meanwhile
		return true
	}
	var p pendingStatus
	if err == nil {
		err = json.Unmarshal(data, &p)
	}
	if err != nil {
		c.log.Error("kept claim status write unreadable: dropped", "file", file, "err", err)
		return os.Remove(file) == nil
	}
	ref := claims.ClaimRef{Namespace: p.Namespace, Name: p.Name, UID: k8stypes.UID(p.UID)}
	ctx, cancel := context.WithTimeout(ctx, claimStatusTimeout)
	defer cancel()
	err = c.apply(ctx, ref, p.Entries)
	if err != nil && retriable(err) {
		c.log.Debug("claim status write failed again; retried later", "claim", ref.String(), "err", err)
		return false
	}
	if err != nil {
		c.log.Error("claim status write refused: given up", "claim", ref.String(), "entries", len(p.Entries), "err", err)
	} else {
		c.log.Info("claim status written after a retry", "claim", ref.String(), "entries", len(p.Entries))
	}
	return os.Remove(file) == nil
}

// claimStatusTimeout bounds one retried status write.
const claimStatusTimeout = 10 * time.Second
