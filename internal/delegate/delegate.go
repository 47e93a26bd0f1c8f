// Package delegate invokes the real CNI plugins of a network (its conflist) through libcni:
// ADD, DEL, CHECK, GC and STATUS, with the runtime arguments and capability arguments of one
// attachment, under a bound on how many plugin calls run at once. libcni's result cache is on,
// so plugins that need their previous result on DEL or CHECK get it.
package delegate

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// Invocation is one attachment of one network to one sandbox interface.
type Invocation struct {
	ConfList       []byte // a conflist JSON, exactly as recorded in the checkpoint
	ContainerID    string
	Netns          string
	IfName         string
	Args           [][2]string    // CNI_ARGS
	CapabilityArgs map[string]any // runtimeConfig, injected for the plugins that declare it
}

// Runner calls delegates. It is safe for concurrent use: the bound on plugin chains run at
// once holds across every call, whatever pod or network it is for.
type Runner struct {
	cni   *libcni.CNIConfig
	sem   chan struct{}
	lists confLists
}

// New returns a runner that finds plugins in binDirs, keeps libcni's cache in cacheDir and
// runs at most maxParallel plugin chains at once. gomaxprocs above 0 runs every plugin with
// GOMAXPROCS set to it, whatever the daemon's environment says: a plugin written in Go (as
// nearly all are) then starts and runs on fewer threads, which costs less CPU per call (~10%
// for the reference plugins), while its goroutines still all run. 0 leaves the environment
// as it is, so a Go plugin uses every core, as when the runtime calls it.
func New(binDirs []string, cacheDir string, maxParallel, gomaxprocs int) *Runner {
	if maxParallel < 1 {
		maxParallel = 1
	}
	// Given here, not left nil: libcni would set its own on first use, which concurrent
	// calls would race on.
	exec := &pipeExec{stderr: os.Stderr, gomaxprocs: gomaxprocs}
	return &Runner{
		cni: libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec),
		sem: make(chan struct{}, maxParallel),
	}
}

func (r *Runner) acquire(ctx context.Context) (func(), error) {
	select {
	case r.sem <- struct{}{}:
		return func() { <-r.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free delegate slot: %w", ctx.Err())
	}
}

// confLists keeps the conflists parsed lately, by their bytes: every pod of a network hands
// the same conflist, and libcni only reads a parsed list, so one parse serves them all.
type confLists struct {
	mu     sync.Mutex
	parsed map[string]*libcni.NetworkConfigList
}

// maxConfLists bounds the conflists kept; past it, the cache starts over.
const maxConfLists = 64

func (c *confLists) parse(conf []byte) (*libcni.NetworkConfigList, error) {
	c.mu.Lock()
	list, ok := c.parsed[string(conf)]
	c.mu.Unlock()
	if ok {
		return list, nil
	}
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.parsed == nil || len(c.parsed) >= maxConfLists {
		c.parsed = map[string]*libcni.NetworkConfigList{}
	}
	c.parsed[string(conf)] = list
	c.mu.Unlock()
	return list, nil
}

func (r *Runner) parse(inv *Invocation) (*libcni.NetworkConfigList, *libcni.RuntimeConf, error) {
	list, err := r.lists.parse(inv.ConfList)
	if err != nil {
		return nil, nil, fmt.Errorf("recorded conflist: %w", err)
	}
	rt := &libcni.RuntimeConf{
		ContainerID:    inv.ContainerID,
		NetNS:          inv.Netns,
		IfName:         inv.IfName,
		Args:           inv.Args,
		CapabilityArgs: inv.CapabilityArgs,
	}
	return list, rt, nil
}

// prepare decodes the invocation and takes a delegate slot; release gives it back.
func (r *Runner) prepare(ctx context.Context, inv *Invocation) (*libcni.NetworkConfigList, *libcni.RuntimeConf, func(), error) {
	list, rt, err := r.parse(inv)
	if err != nil {
		return nil, nil, nil, err
	}
	release, err := r.acquire(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return list, rt, release, nil
}

// Add runs ADD through the whole list and returns the last plugin's result.
func (r *Runner) Add(ctx context.Context, inv *Invocation) (types.Result, error) {
	list, rt, release, err := r.prepare(ctx, inv)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.cni.AddNetworkList(ctx, list, rt)
}

// Del runs DEL through the list in reverse. A missing netns is the plugins' business: the
// spec asks them to release what they hold (IPAM addresses) all the same.
func (r *Runner) Del(ctx context.Context, inv *Invocation) error {
	list, rt, release, err := r.prepare(ctx, inv)
	if err != nil {
		return err
	}
	defer release()
	return r.cni.DelNetworkList(ctx, list, rt)
}

// Check runs CHECK through the list.
func (r *Runner) Check(ctx context.Context, inv *Invocation) error {
	list, rt, release, err := r.prepare(ctx, inv)
	if err != nil {
		return err
	}
	defer release()
	return r.cni.CheckNetworkList(ctx, list, rt)
}

// GC removes, for one network, every cached attachment not in valid, then asks its plugins
// to collect their own garbage (CNI 1.1; older plugins are skipped by libcni).
func (r *Runner) GC(ctx context.Context, confList []byte, valid []types.GCAttachment) error {
	list, err := r.lists.parse(confList)
	if err != nil {
		return fmt.Errorf("conflist: %w", err)
	}
	release, err := r.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return r.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
}

// Status asks a network's plugins whether they are ready (CNI 1.1).
func (r *Runner) Status(ctx context.Context, confList []byte) error {
	list, err := r.lists.parse(confList)
	if err != nil {
		return fmt.Errorf("conflist: %w", err)
	}
	return r.cni.GetStatusNetworkList(ctx, list)
}
