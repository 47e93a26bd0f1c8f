package cniapi

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Coded gives err a CNI error code, for the daemon's managers to return and their ToCNI to
// map; the message is err's whole chain.
func Coded(code uint, err error) error { return &codedError{code: code, err: err} }

type codedError struct {
	code uint
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

// CodeOf is the code Coded gave err or an error in its chain.
func CodeOf(err error) (uint, bool) {
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code, true
	}
	return 0, false
}

// ToCNI is the CNI error of err: the code Coded gave it, else 999 (internal); the message is
// err's whole chain. nil for nil.
func ToCNI(err error) *types.Error {
	if err == nil {
		return nil
	}
	if code, ok := CodeOf(err); ok {
		return &types.Error{Code: code, Msg: err.Error()}
	}
	return &types.Error{Code: types.ErrInternal, Msg: err.Error()}
}

// Render converts a result to the network's CNI version (empty: the newest) and encodes it.
func Render(res *types100.Result, version string) (json.RawMessage, error) {
	if version == "" {
		version = types100.ImplementedSpecVersion
	}
	conv, err := res.GetAsVersion(version)
	if err != nil {
		return nil, Coded(types.ErrIncompatibleCNIVersion, fmt.Errorf("result as CNI %s: %w", version, err))
	}
	out, err := json.Marshal(conv)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return out, nil
}
