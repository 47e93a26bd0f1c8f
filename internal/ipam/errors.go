package ipam

import (
	"errors"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
)

// errTryAgain marks faults a later retry may not meet (CNI code 11).
var errTryAgain = errors.New("try again later")

// cniError gives err a CNI error code; the message is err's whole chain.
func cniError(code uint, err error) error { return &codedError{code: code, err: err} }

type codedError struct {
	code uint
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// ToCNI maps any error of the manager to the CNI error the plugin returns.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	var ce *codedError
	switch {
	case errors.As(err, &ce):
		return &types.Error{Code: ce.code, Msg: err.Error()}
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
