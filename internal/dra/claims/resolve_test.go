package claims

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	resourcev1 "k8s.io/api/resource/v1"
)

// picked is what a test checks of a resolved device.
type picked struct{ id, claim, podClaim, request, ifName string }

func pickedOf(devs []Device) []picked {
	out := make([]picked, 0, len(devs))
	for _, d := range devs {
		out = append(out, picked{d.ID(), d.Claim.String(), d.PodClaim, d.Request, d.IfName})
	}
	return out
}

func TestResolveAssignsDistinctDevicesInStableOrder(t *testing.T) {
	// Two claims: "fast" named directly, "bulk" made from a template. "fast" holds two
	// devices of class a and one of class b; "bulk" one more of class a.
	twoClaims := generated(podWith(direct("fast", "fast-nics"), fromTemplate("bulk")), "bulk", ptr("web-0-bulk-x7k2p"))
	claims := []*resourcev1.ResourceClaim{
		allocated("web-0-bulk-x7k2p", result{"nic", sriov, "node-a", "vf-5"}),
		allocated("fast-nics", result{"nic", sriov, "node-a", "vf-1"}, result{"nic", sriov, "node-a", "vf-0"},
			result{"other", sriov, "node-a", "vf-9"}),
	}
	slices := []*resourcev1.ResourceSlice{slice(sriov, "node-a", 1,
		nic("vf-0", "example.com/a", "ens1f0v0"), nic("vf-1", "example.com/a", "ens1f0v1"),
		nic("vf-5", "example.com/a", "ens1f0v5"), nic("vf-9", "example.com/b", "ens2f0v9"))}
	tests := []struct {
		name string
		atts []Attachment
		want []picked
	}{
		{"one attachment takes the first device of the first claim",
			[]Attachment{{"net/a1", "example.com/a"}},
			[]picked{{"sriov.example.com/node-a/vf-1", "net/fast-nics", "fast", "nic", "ens1f0v1"}}},
		{"attachments of one resourceName take successive devices, across claims",
			[]Attachment{{"net/a1", "example.com/a"}, {"net/a2", "example.com/a"}, {"net/a3", "example.com/a"}},
			[]picked{
				{"sriov.example.com/node-a/vf-1", "net/fast-nics", "fast", "nic", "ens1f0v1"},
				{"sriov.example.com/node-a/vf-0", "net/fast-nics", "fast", "nic", "ens1f0v0"},
				{"sriov.example.com/node-a/vf-5", "net/web-0-bulk-x7k2p", "bulk", "nic", "ens1f0v5"},
			}},
		{"two NADs of different resourceNames",
			[]Attachment{{"net/b", "example.com/b"}, {"net/a1", "example.com/a"}},
			[]picked{
				{"sriov.example.com/node-a/vf-9", "net/fast-nics", "fast", "other", "ens2f0v9"},
				{"sriov.example.com/node-a/vf-1", "net/fast-nics", "fast", "nic", "ens1f0v1"},
			}},
		{"no attachment, no device", nil, []picked{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, err := Resolve(Objects{Pod: twoClaims, Claims: claims, Slices: slices}, tt.atts)
			if err != nil {
				t.Fatal(err)
			}
			if got := pickedOf(devs); !equalPicked(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func equalPicked(a, b []picked) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestResolveClaimsOfThePodOnly(t *testing.T) {
	tests := []struct {
		name   string
		pod    *corev1.Pod
		claims []*resourcev1.ResourceClaim
		want   string
	}{
		{"a template's claim the control plane found unneeded is skipped",
			generated(generated(podWith(fromTemplate("none"), fromTemplate("nics")), "none", nil), "nics", ptr("web-0-nics-1")),
			[]*resourcev1.ResourceClaim{allocated("web-0-nics-1", result{"r", sriov, "p", "vf-0"})},
			"sriov.example.com/p/vf-0"},
		{"a claim of the same name in another namespace is not the pod's",
			podWith(direct("nics", "shared")),
			[]*resourcev1.ResourceClaim{inNamespace("other", allocated("shared", result{"r", sriov, "p", "vf-1"})),
				allocated("shared", result{"r", sriov, "p", "vf-0"})},
			"sriov.example.com/p/vf-0"},
		{"a device allocated for admin access is not attached",
			podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{adminAccess(allocated("c", result{"watch", sriov, "p", "vf-1"}, result{"r", sriov, "p", "vf-0"}))},
			"sriov.example.com/p/vf-0"},
		{"the claim made for extended resources comes after the spec's",
			withExtended(podWith(direct("nics", "gpus")), "web-0-extended-resources-abc"),
			[]*resourcev1.ResourceClaim{allocated("gpus", result{"gpu", "gpu.example.com", "p", "gpu-0"}),
				allocated("web-0-extended-resources-abc", result{"container-0-request-0", sriov, "p", "vf-1"})},
			"sriov.example.com/p/vf-1"},
	}
	slices := []*resourcev1.ResourceSlice{
		slice(sriov, "p", 1, nic("vf-0", "example.com/a", "v0"), nic("vf-1", "example.com/a", "v1")),
		slice("gpu.example.com", "p", 1, device("gpu-0", nil)),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devs, err := Resolve(Objects{Pod: tt.pod, Claims: tt.claims, Slices: slices}, []Attachment{{"net/a", "example.com/a"}})
			if err != nil {
				t.Fatal(err)
			}
			if devs[0].ID() != tt.want {
				t.Errorf("got %s, want %s", devs[0].ID(), tt.want)
			}
		})
	}
}

// adminAccess marks the claim's first result as allocated for admin access.
func adminAccess(c *resourcev1.ResourceClaim) *resourcev1.ResourceClaim {
	c.Status.Allocation.Devices.Results[0].AdminAccess = ptr(true)
	return c
}

func inNamespace(ns string, c *resourcev1.ResourceClaim) *resourcev1.ResourceClaim {
	c.Namespace = ns
	return c
}

func withExtended(pod *corev1.Pod, claim string) *corev1.Pod {
	pod.Status.ExtendedResourceClaimStatus = &corev1.PodExtendedResourceClaimStatus{ResourceClaimName: claim}
	return pod
}

func TestResolveReadsTheNewestGenerationOfAPool(t *testing.T) {
	pod := podWith(direct("nics", "c"))
	claims := []*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-0"})}
	for _, order := range [][]int64{{1, 2}, {2, 1}} {
		var slices []*resourcev1.ResourceSlice
		for _, gen := range order {
			ifName := map[int64]string{1: "old0", 2: "new0"}[gen]
			slices = append(slices, slice(sriov, "p", gen, nic("vf-0", "example.com/a", ifName)))
		}
		devs, err := Resolve(Objects{Pod: pod, Claims: claims, Slices: slices}, []Attachment{{"net/a", "example.com/a"}})
		if err != nil {
			t.Fatal(err)
		}
		if devs[0].IfName != "new0" {
			t.Errorf("slices of generations %v: ifName %q, want the newest's", order, devs[0].IfName)
		}
	}
}

func TestResolveErrorsNameThePodTheNADAndTheClaim(t *testing.T) {
	slices := []*resourcev1.ResourceSlice{slice(sriov, "p", 1,
		nic("vf-0", "example.com/a", "v0"), nic("vf-1", "example.com/a", "v1"), nic("vf-2", "example.com/b", "v2")),
		slice("gpu.example.com", "p", 1, device("gpu-0", nil))}
	one := []Attachment{{"net/a", "example.com/a"}}
	notReserved := allocated("c", result{"r", sriov, "p", "vf-0"})
	notReserved.Status.ReservedFor[0].UID = "another-pod"
	tests := []struct {
		name     string
		pod      *corev1.Pod
		claims   []*resourcev1.ResourceClaim
		atts     []Attachment
		want     error
		claim    string // Error.Claim
		podClaim string // Error.PodClaim
		device   string // Error.Device
	}{
		{"template claim not in the pod's status yet", podWith(fromTemplate("nics")), nil, one,
			ErrClaimPending, "", "nics", ""},
		{"ResourceClaim not among the objects", podWith(direct("nics", "c")), nil, one,
			ErrClaimPending, "net/c", "nics", ""},
		{"claim not allocated", podWith(direct("nics", "c")), []*resourcev1.ResourceClaim{pending("c")}, one,
			ErrNotAllocated, "net/c", "nics", ""},
		{"claim reserved for another pod", podWith(direct("nics", "c")), []*resourcev1.ResourceClaim{notReserved}, one,
			ErrNotReserved, "net/c", "nics", ""},
		{"allocated device in no slice", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-7"})}, one,
			ErrDeviceNotFound, "net/c", "nics", "sriov.example.com/p/vf-7"},
		{"allocated device in a pool of another driver only", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", dranet, "p", "vf-0"})}, one,
			ErrDeviceNotFound, "net/c", "nics", "dra.net/p/vf-0"},
		{"fewer devices than attachments", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-0"}, result{"r", sriov, "p", "vf-2"})},
			[]Attachment{{"net/a", "example.com/a"}, {"net/a2", "example.com/a"}},
			ErrTooFewDevices, "net/c", "nics", ""},
		{"no claim provides the resourceName", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-2"})}, one,
			ErrNoClaim, "", "", ""},
		{"a pod without claims", podWith(), nil, one, ErrNoClaim, "", "", ""},
		{"an empty resourceName matches no device, not those without the attribute", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", "gpu.example.com", "p", "gpu-0"})},
			[]Attachment{{"net/a", ""}}, ErrNoClaim, "", "", ""},
		{"a claim the pod names twice holds its devices once", podWith(direct("first", "c"), direct("again", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-0"})},
			[]Attachment{{"net/a", "example.com/a"}, {"net/a2", "example.com/a"}},
			ErrTooFewDevices, "net/c", "first", ""},
		{"a pending claim hides what a later one holds", podWith(fromTemplate("first"), direct("second", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-0"})}, one,
			ErrClaimPending, "", "first", ""},
		{"a missing device hides what later ones hold", podWith(direct("nics", "c")),
			[]*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "gone"}, result{"r", sriov, "p", "vf-0"})}, one,
			ErrDeviceNotFound, "net/c", "nics", "sriov.example.com/p/gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve(Objects{Pod: tt.pod, Claims: tt.claims, Slices: slices}, tt.atts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T, want *Error", err)
			}
			nad := tt.atts[len(tt.atts)-1].NAD
			if e.Pod != "net/web-0" || e.NAD != nad || e.Claim != tt.claim || e.PodClaim != tt.podClaim || e.Device != tt.device {
				t.Errorf("error names pod %q NAD %q claim %q pod claim %q device %q, want net/web-0 %q %q %q %q",
					e.Pod, e.NAD, e.Claim, e.PodClaim, e.Device, nad, tt.claim, tt.podClaim, tt.device)
			}
			t.Log(err)
		})
	}
}

func TestResolveFaultsPastTheMatchDoNotMatter(t *testing.T) {
	pod := podWith(direct("nics", "c"), fromTemplate("later"))
	claims := []*resourcev1.ResourceClaim{allocated("c", result{"r", sriov, "p", "vf-0"}, result{"r", sriov, "p", "gone"})}
	slices := []*resourcev1.ResourceSlice{slice(sriov, "p", 1, nic("vf-0", "example.com/a", "v0"))}
	devs, err := Resolve(Objects{Pod: pod, Claims: claims, Slices: slices}, []Attachment{{"net/a", "example.com/a"}})
	if err != nil {
		t.Fatal(err)
	}
	if devs[0].Name != "vf-0" {
		t.Errorf("got %s, want vf-0", devs[0].ID())
	}
}
