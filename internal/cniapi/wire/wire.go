// Package wire speaks the shim protocol by hand: one HTTP/1.1 POST on the daemon's unix
// socket, JSON bodies written and scanned without net/http, net or encoding/json. The CNI
// shim is exec'd for every pod sandbox; linking those packages (and the dynamic loader the
// net package brings with cgo) doubled what each exec costs. cniapi holds the same request
// and response as Go types for the daemon side; a test keeps the two in step.
package wire

import (
	"errors"
	"time"
)

// Path is the HTTP path the daemon serves CNI requests on.
const Path = "/cni"

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/multinet/multinet.sock"

// DialWait is how long a call waits for a daemon that is not listening (restarting, being
// upgraded) before it gives up: long enough to ride out a DaemonSet rollout, short enough
// for the runtime's own retry to take over.
const DialWait = 10 * time.Second

// Request is cniapi.Request, field for field: one CNI invocation as the runtime made it.
// Config is the network configuration from stdin, already checked to be one JSON value.
type Request struct {
	Command     string
	ContainerID string
	Netns       string
	IfName      string
	Args        string
	Path        string
	Config      []byte
}

// AppendJSON appends the request as cniapi.Request's JSON encoding (an empty Config as
// null, which the daemon decodes as none).
func (r *Request) AppendJSON(dst []byte) []byte {
	fields := []struct{ key, value string }{
		{"command", r.Command}, {"containerID", r.ContainerID}, {"netns", r.Netns},
		{"ifName", r.IfName}, {"args", r.Args}, {"path", r.Path},
	}
	dst = append(dst, '{')
	for _, f := range fields {
		dst = append(dst, '"')
		dst = append(dst, f.key...)
		dst = append(dst, '"', ':')
		dst = append(AppendString(dst, f.value), ',')
	}
	dst = append(dst, `"config":`...)
	if len(r.Config) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, r.Config...)
	}
	return append(dst, '}')
}

// ParseResponse splits the daemon's answer (cniapi.Response) into the CNI result to print
// and the CNI error object to print; either may be nil.
func ParseResponse(body []byte) (result, cniErr []byte, err error) {
	err = Object(body, func(key string, value []byte) error {
		switch key {
		case "result":
			result = value
		case "error":
			cniErr = value
		}
		return nil
	})
	if err != nil {
		return nil, nil, wrap("daemon's reply", err)
	}
	if isNull(result) {
		result = nil
	}
	if isNull(cniErr) {
		cniErr = nil
	} else if cniErr[0] != '{' {
		return nil, nil, errors.New("daemon's reply: error is not an object")
	}
	return result, cniErr, nil
}

// wrapError is "context: cause" with the cause kept for errors.Is and errors.As: fmt's %w,
// without linking fmt.
type wrapError struct {
	context string
	cause   error
}

func wrap(context string, cause error) error { return &wrapError{context: context, cause: cause} }

func (e *wrapError) Error() string { return e.context + ": " + e.cause.Error() }

func (e *wrapError) Unwrap() error { return e.cause }
