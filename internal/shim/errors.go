package shim

import (
	"strconv"

	"github.com/multinet/multinet/internal/cniapi/wire"
)

// CNI error codes (CNI spec, "Error"), the ones the shim answers with.
const (
	errIncompatibleCNIVersion      = 1
	errInvalidEnvironmentVariables = 4
	errIOFailure                   = 5
	errDecodingFailure             = 6
	errInvalidNetworkConfig        = 7
	errInvalidNetNS                = 8
	errTryAgainLater               = 11
	errInternal                    = 999
)

// Error is a CNI error (types.Error's JSON: code, msg, details).
type Error struct {
	Code    uint
	Msg     string
	Details string
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + "; " + e.Details
}

// JSON is the error as the runtime reads it on stdout.
func (e *Error) JSON() []byte {
	b := strconv.AppendUint([]byte(`{"code":`), uint64(e.Code), 10)
	b = wire.AppendString(append(b, `,"msg":`...), e.Msg)
	if e.Details != "" {
		b = wire.AppendString(append(b, `,"details":`...), e.Details)
	}
	return append(b, "}\n"...)
}

// relayedError is the daemon's CNI error object, printed as the daemon wrote it.
type relayedError []byte

func (e relayedError) Error() string { return string(e) }
