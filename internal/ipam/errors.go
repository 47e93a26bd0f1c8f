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

// ToCNI maps any error of the manager to the CNI error the plugin returns.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	if code, ok := cniapi.CodeOf(err); ok {
		return &types.Error{Code: code, Msg: err.Error()}
	}
	switch {
	case errors.Is(err, errBadConf):
		return &types.Error{Code: types.ErrInvalidNetworkConfig, Msg: err.Error()}
	case errors.Is(err, errTryAgain), errors.Is(err, ErrTaken): // a pod's DEL may free it
		return &types.Error{Code: types.ErrTryAgainLater, Msg: err.Error()}
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}

func netipToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
