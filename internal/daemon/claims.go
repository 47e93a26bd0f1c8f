package daemon

import (
	"context"
	"fmt"
	"log/slog"

	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	resourceclient "k8s.io/client-go/kubernetes/typed/resource/v1"
	"k8s.io/client-go/rest"

	"github.com/multinet/multinet/internal/attach"
	"github.com/multinet/multinet/internal/dra/claims"
)

// claimsClient reads ResourceClaims and ResourceSlices and writes claim status through the
// resource.k8s.io/v1 API. It is asked only for pods with ResourceClaims, which exist only
// where that API is served: nothing is read for any other pod.
type claimsClient struct {
	client  resourceclient.ResourceV1Interface
	manager string // the field manager of this node's status entries
}

// startDRA gives mgr its DRA client (device-backed networks).
func startDRA(o Options, cfg *rest.Config, mgr *attach.Manager, log *slog.Logger) error {
	c, err := newClaims(o, cfg, log)
	if err != nil {
		return err
	}
	if c != nil {
		mgr.Claims = c
	}
	return nil
}

// newClaims returns the ADD path's DRA client, or nil when --dra is off.
func newClaims(o Options, cfg *rest.Config, log *slog.Logger) (attach.Claims, error) {
	if !o.DRA {
		log.Info("DRA off: device-backed networks are attached as their NetworkAttachmentDefinition's config says")
		return nil, nil
	}
	c, err := resourceclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("resource.k8s.io/v1 client: %w", err)
	}
	return &claimsClient{client: c, manager: claimFieldManager(o.NodeName)}, nil
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

func (c *claimsClient) ApplyStatus(ctx context.Context, claim claims.ClaimRef, entries []resourcev1.AllocatedDeviceStatus) error {
	_, err := c.client.ResourceClaims(claim.Namespace).ApplyStatus(ctx, claims.StatusApply(claim, entries...),
		metav1.ApplyOptions{FieldManager: c.manager, Force: true})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
