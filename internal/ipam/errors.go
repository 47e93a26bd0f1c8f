package ipam

import (
	"errors"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/multinet/multinet/internal/cniapi"
)

// errTryAgain marks faults a later retry may not meet (CNI code 11).
var errTryAgain = errors.New("try again later")

// cniError gives err a CNI error code; the message is err's whole chain.
var cniError = cniapi.Coded

// ToCNI maps any error of the manager to the CNI error the plugin returns: a code given with
// cniError, else configuration faults 7, what a retry may get past 11, the rest 999.
func ToCNI(err error) *types.Error {
	if _, coded := cniapi.CodeOf(err); !coded && err != nil {
		switch {
		case errors.Is(err, errBadConf):
			return &types.Error{Code: types.ErrInvalidNetworkConfig, Msg: err.Error()}
		case errors.Is(err, errTryAgain), errors.Is(err, ErrTaken): // a pod's DEL may free it
			return &types.Error{Code: types.ErrTryAgainLater, Msg: err.Error()}
		}
	}
	return cniapi.ToCNI(err)
}

func netipToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
