package claims

import (
	"encoding/json"
	"testing"
	"time"

	resourcev1 "k8s.io/api/resource/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestStatusApplyCarriesEveryField(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC))
	full := resourcev1.AllocatedDeviceStatus{
		Driver: sriov, Pool: "node-a", Device: "vf-1", ShareID: ptr("0b6a3c2e-0000-4000-8000-000000000001"),
		Conditions:  []metav1.Condition{{Type: "Ready", Status: "True", Reason: "Attached", Message: "m", ObservedGeneration: 2, LastTransitionTime: at}},
		NetworkData: &resourcev1.NetworkDeviceData{InterfaceName: "net1", IPs: []string{"10.1.0.5/24"}, HardwareAddress: "02:00:00:00:00:01"},
		Data:        &runtime.RawExtension{Raw: []byte(`{"a":1}`)},
	}
	bare := resourcev1.AllocatedDeviceStatus{Driver: sriov, Pool: "node-a", Device: "vf-2", NetworkData: &resourcev1.NetworkDeviceData{}}
	tests := []struct {
		name    string
		entries []resourcev1.AllocatedDeviceStatus
	}{
		{"every field", []resourcev1.AllocatedDeviceStatus{full}},
		{"empty network data", []resourcev1.AllocatedDeviceStatus{bare}},
		{"two entries", []resourcev1.AllocatedDeviceStatus{full, bare}},
		{"none", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(StatusApply(ClaimRef{Namespace: testNS, Name: "c"}, tt.entries...))
			if err != nil {
				t.Fatal(err)
			}
			var got resourcev1.ResourceClaim
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Kind != "ResourceClaim" || got.APIVersion != "resource.k8s.io/v1" || got.Namespace != testNS || got.Name != "c" {
				t.Errorf("object %s %s %s/%s", got.APIVersion, got.Kind, got.Namespace, got.Name)
			}
			if !apiequality.Semantic.DeepEqual(got.Status.Devices, tt.entries) {
				t.Errorf("devices %+v\nwant %+v\n%s", got.Status.Devices, tt.entries, b)
			}
		})
	}
}
