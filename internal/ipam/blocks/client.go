package blocks

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client reads and writes IPBlocks. Its errors are the API server's, unwrapped, so that
// k8s.io/apimachinery/pkg/api/errors (IsConflict, IsAlreadyExists, IsNotFound) applies.
type Client interface {
	// Create creates b; a block of that name already there gives an IsAlreadyExists error.
	Create(ctx context.Context, b *IPBlock) (*IPBlock, error)
	// Get reads the block name.
	Get(ctx context.Context, name string) (*IPBlock, error)
	// Update replaces the block with b if b's resourceVersion is still the stored one: a
	// compare-and-swap. A lost race gives an IsConflict error; the caller reads the block
	// again and retries. The API server refuses a b without a resourceVersion (IsInvalid).
	Update(ctx context.Context, b *IPBlock) (*IPBlock, error)
	// Delete deletes the block name if its UID and resourceVersion, each when non-empty,
	// still match (else an IsConflict error). A block already gone gives an IsNotFound
	// error: whether that is success is the caller's decision.
	Delete(ctx context.Context, name string, uid types.UID, resourceVersion string) error
	// List lists blocks.
	List(ctx context.Context, opts metav1.ListOptions) (*IPBlockList, error)
	// Watch watches blocks; the caller stops the watch.
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

var groupVersion = schema.GroupVersion{Group: Group, Version: Version}

// codecs encode and decode IPBlock, IPBlockList and the meta types the API exchanges with
// them (options, Status, watch events), as JSON.
var codecs = serializer.NewCodecFactory(newScheme())

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	s.AddKnownTypes(groupVersion, &IPBlock{}, &IPBlockList{})
	metav1.AddToGroupVersion(s, groupVersion)
	return s
}

// NewClient returns a Client over a REST client for ipam.multinet.io/v1alpha1 made from a
// copy of cfg.
func NewClient(cfg *rest.Config) (Client, error) {
	rc, err := restClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &client{rest: rc}, nil
}

func restClientFor(cfg *rest.Config) (*rest.RESTClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.GroupVersion = &groupVersion
	cfg.APIPath = "/apis"
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = codecs.WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("rest client for %s: %w", groupVersion, err)
	}
	return rc, nil
}

type client struct {
	rest rest.Interface
}

func (c *client) Create(ctx context.Context, b *IPBlock) (*IPBlock, error) {
	out := &IPBlock{}
	err := c.rest.Post().Resource(Resource).Body(b).Do(ctx).Into(out)
	return out, err
}

func (c *client) Get(ctx context.Context, name string) (*IPBlock, error) {
	out := &IPBlock{}
	err := c.rest.Get().Resource(Resource).Name(name).Do(ctx).Into(out)
	return out, err
}

func (c *client) Update(ctx context.Context, b *IPBlock) (*IPBlock, error) {
	out := &IPBlock{}
	err := c.rest.Put().Resource(Resource).Name(b.Name).Body(b).Do(ctx).Into(out)
	return out, err
}

func (c *client) Delete(ctx context.Context, name string, uid types.UID, resourceVersion string) error {
	opts := &metav1.DeleteOptions{}
	if uid != "" || resourceVersion != "" {
		opts.Preconditions = &metav1.Preconditions{}
		if uid != "" {
			opts.Preconditions.UID = &uid
		}
		if resourceVersion != "" {
			opts.Preconditions.ResourceVersion = &resourceVersion
		}
	}
	return c.rest.Delete().Resource(Resource).Name(name).Body(opts).Do(ctx).Error()
}

func (c *client) List(ctx context.Context, opts metav1.ListOptions) (*IPBlockList, error) {
	out := &IPBlockList{}
	err := c.rest.Get().Resource(Resource).VersionedParams(&opts, metav1.ParameterCodec).
		Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

func (c *client) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rest.Get().Resource(Resource).VersionedParams(&opts, metav1.ParameterCodec).
		Timeout(timeoutOf(opts)).Watch(ctx)
}

// timeoutOf is opts.TimeoutSeconds as a client-side timeout too (0: none), as client-go's
// generated clients do.
func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
