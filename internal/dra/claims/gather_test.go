package claims

import (
	"context"
	"errors"
	"reflect"
	"testing"

	resourcev1 "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// memSource serves objects from memory, and counts the reads.
type memSource struct {
	claims      []*resourcev1.ResourceClaim
	slices      []*resourcev1.ResourceSlice
	claimErr    error
	driversRead []string
}

func (m *memSource) ResourceClaim(_ context.Context, ns, name string) (*resourcev1.ResourceClaim, error) {
	if m.claimErr != nil {
		return nil, m.claimErr
	}
	if c := findClaim(m.claims, ns, name); c != nil {
		return c, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "resource.k8s.io", Resource: "resourceclaims"}, name)
}

func (m *memSource) ResourceSlices(_ context.Context, driver string) ([]*resourcev1.ResourceSlice, error) {
	m.driversRead = append(m.driversRead, driver)
	var out []*resourcev1.ResourceSlice
	for _, s := range m.slices {
		if s.Spec.Driver == driver {
			out = append(out, s)
		}
	}
	return out, nil
}

func TestGatherReadsThePodsClaimsAndTheirDriversSlices(t *testing.T) {
	pod := generated(podWith(direct("fast", "fast-nics"), fromTemplate("bulk"), fromTemplate("later"), direct("gone", "deleted")),
		"bulk", ptr("web-0-bulk-1"))
	src := &memSource{
		claims: []*resourcev1.ResourceClaim{
			allocated("fast-nics", result{"r", sriov, "p", "vf-0"}, result{"r", dranet, "p", "eth1"}),
			allocated("web-0-bulk-1", result{"r", sriov, "p", "vf-1"}),
			pending("unallocated"),
		},
		slices: []*resourcev1.ResourceSlice{slice(sriov, "p", 1), slice(dranet, "p", 1), slice("gpu.example.com", "p", 1)},
	}
	obj, err := Gather(t.Context(), src, pod)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range obj.Claims {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"fast-nics", "web-0-bulk-1"}) {
		t.Errorf("claims %v", names)
	}
	if !reflect.DeepEqual(src.driversRead, []string{sriov, dranet}) || len(obj.Slices) != 2 {
		t.Errorf("slices of %v read, %d kept", src.driversRead, len(obj.Slices))
	}
}

func TestGatherFailsOnAnErrorOtherThanNotFound(t *testing.T) {
	down := errors.New("connection refused")
	_, err := Gather(t.Context(), &memSource{claimErr: down}, podWith(direct("fast", "fast-nics")))
	if !errors.Is(err, down) {
		t.Errorf("error %v, want %v", err, down)
	}
}
