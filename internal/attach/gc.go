package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/checkpoint"
	"github.com/multinet/multinet/internal/cniapi"
)

// gcGrace spares records written this recently: an ADD may be under way for a sandbox the
// runtime had not listed yet when it computed its valid attachments.
const gcGrace = time.Minute

// GC (CNI 1.1) detaches every recorded sandbox the runtime no longer lists as valid, then
// lets the default network's plugins collect what they hold for attachments nobody has.
func (m *Manager) GC(ctx context.Context, in *cniapi.Request) error {
	req, err := decode(in)
	if err != nil {
		return err
	}
	valid := map[string]bool{}
	for _, a := range req.gcValid {
		valid[a.ContainerID] = true
	}
	ids, err := m.Store.List()
	if err != nil {
		return err
	}
	var errs []error
	var keep []types.GCAttachment
	var defConf []byte
	for _, id := range ids {
		if !valid[id] && !m.Store.Recent(id, gcGrace) {
			errs = append(errs, m.delLocked(ctx, id, ""))
			continue
		}
		if a := m.defaultAttachment(id); a != nil {
			keep = append(keep, types.GCAttachment{ContainerID: id, IfName: a.IfName})
			defConf = a.ConfList
		}
	}
	if defConf == nil {
		if def, err := m.ClusterDefault(); err == nil {
			defConf = def.ConfList
		}
	}
	if defConf != nil {
		errs = append(errs, m.Delegates.GC(ctx, defConf, keep))
	}
	return errors.Join(errs...)
}

func (m *Manager) defaultAttachment(id string) *checkpoint.Attachment {
	sb, err := m.Store.Load(id)
	if err != nil {
		return nil
	}
	for i := range sb.Attachments {
		if sb.Attachments[i].Default {
			return &sb.Attachments[i]
		}
	}
	return nil
}

func (m *Manager) delLocked(ctx context.Context, id, netns string) error {
	defer m.lock(id)()
	return m.delSandbox(ctx, id, netns)
}

// Sweep detaches the recorded sandboxes whose network namespace is gone: a runtime that lost
// track of them will never send their DEL, and their IPs would leak.
func (m *Manager) Sweep(ctx context.Context) error {
	ids, err := m.Store.List()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		sb, err := m.Store.Load(id)
		if err != nil || !sweepable(sb.Netns) {
			continue
		}
		if _, err := os.Stat(sb.Netns); !errors.Is(err, os.ErrNotExist) {
			continue
		}
		m.Log.Info("sweeping sandbox whose netns is gone", "containerID", id, "netns", sb.Netns,
			"pod", podOf(sb).String())
		errs = append(errs, m.delLocked(ctx, id, ""))
	}
	return errors.Join(errs...)
}

// sweepable tells whether a missing netns path proves the sandbox is gone. A /proc/PID/ns/net
// path (some runtimes use them) may just not be visible from the daemon's PID namespace.
func sweepable(netns string) bool {
	return netns != "" && !strings.HasPrefix(netns, "/proc/")
}

// Status (CNI 1.1) reports whether pods can be attached now: the default network is known
// and its plugins say they are ready.
func (m *Manager) Status(ctx context.Context, _ *cniapi.Request) error {
	def, err := m.ClusterDefault()
	if err != nil {
		return &cniError{code: 50, err: err} // 50: the plugin is not available
	}
	if err := m.Delegates.Status(ctx, def.ConfList); err != nil {
		return fmt.Errorf("default network %q: %w", def.Key, err)
	}
	return nil
}
