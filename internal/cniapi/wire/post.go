package wire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"
)

// MaxReply bounds the daemon's answer: a CNI result is a few KiB.
const MaxReply = 16 << 20

// StatusError is an HTTP answer other than 200 OK, with the start of its body.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return "HTTP " + strconv.Itoa(e.Code) + ": " + e.Body }

// Post sends body as a JSON POST to path on the daemon's unix socket and returns the body of
// its 200 answer. The request says Connection: close: one call, one connection.
func Post(ctx context.Context, socket, path string, body []byte) ([]byte, error) {
	conn, err := dial(ctx, socket)
	if err != nil {
		return nil, wrap("connect to "+socket, err)
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	reply, err := exchange(conn, path, body)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline is ctx's own: its timer may fire a moment later.
			<-ctx.Done()
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, wrap("POST "+path+" on "+socket, err)
	}
	return reply, nil
}

// exchange writes the request and reads the answer.
func exchange(conn io.ReadWriter, path string, body []byte) ([]byte, error) {
	req := make([]byte, 0, 160+len(body))
	req = append(req, "POST "+path+" HTTP/1.1\r\nHost: multinetd\r\nContent-Type: application/json\r\n"...)
	req = append(req, "Connection: close\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(append(req, "\r\n\r\n"...), body...)
	if _, err := conn.Write(req); err != nil {
		return nil, wrap("write request", err)
	}
	return readResponse(bufio.NewReader(conn))
}

// readResponse reads an HTTP/1.x response: status line, headers, and a body framed by
// Content-Length, chunked transfer coding, or the end of the connection.
func readResponse(r *bufio.Reader) ([]byte, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, wrap("read status line", err)
	}
	code, err := statusCode(line)
	if err != nil {
		return nil, err
	}
	length, chunked, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	var body []byte
	switch {
	case chunked:
		body, err = readChunked(r)
	case length >= 0:
		body = make([]byte, length)
		_, err = io.ReadFull(r, body)
	default:
		body, err = io.ReadAll(io.LimitReader(r, MaxReply+1))
		if err == nil && len(body) > MaxReply {
			err = errors.New("reply larger than " + strconv.Itoa(MaxReply) + " bytes")
		}
	}
	if err != nil {
		return nil, wrap("read body", unexpected(err))
	}
	if code != 200 {
		return nil, &StatusError{Code: code, Body: string(bytes.TrimSpace(body[:min(len(body), 4096)]))}
	}
	return body, nil
}

// statusCode reads "HTTP/1.1 200 OK".
func statusCode(line []byte) (int, error) {
	proto, rest, _ := bytes.Cut(line, []byte(" "))
	codeText, _, _ := bytes.Cut(rest, []byte(" "))
	code, err := strconv.Atoi(string(codeText))
	if !bytes.HasPrefix(proto, []byte("HTTP/1.")) || err != nil || len(codeText) != 3 {
		return 0, errors.New("not an HTTP/1 status line: " + strconv.Quote(string(line[:min(len(line), 80)])))
	}
	return code, nil
}

// readHeader reads header lines up to the blank line and returns the body's framing:
// Content-Length (-1 if absent) or chunked.
func readHeader(r *bufio.Reader) (length int, chunked bool, err error) {
	length = -1
	for n := 0; ; n++ {
		line, err := readLine(r)
		if err != nil {
			return 0, false, wrap("read header", err)
		}
		if len(line) == 0 {
			return length, chunked, nil
		}
		if n > 100 {
			return 0, false, errors.New("more than 100 header lines")
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(value))
			if err != nil || length < 0 || length > MaxReply {
				return 0, false, errors.New("bad Content-Length " + strconv.Quote(string(value)))
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return 0, false, errors.New("unsupported Transfer-Encoding " + strconv.Quote(string(value)))
			}
		}
	}
}

// readChunked reads a chunked body (RFC 9112 section 7.1) and its trailer.
func readChunked(r *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(r)
		if err != nil {
			return nil, err
		}
		sizeText, _, _ := bytes.Cut(line, []byte(";"))
		size, err := strconv.ParseUint(string(bytes.TrimSpace(sizeText)), 16, 32)
		if err != nil || len(body)+int(size) > MaxReply {
			return nil, errors.New("bad chunk size " + strconv.Quote(string(line[:min(len(line), 40)])))
		}
		if size == 0 {
			_, _, err := readHeader(r) // the trailer, ignored
			return body, err
		}
		start := len(body)
		body = append(body, make([]byte, size)...)
		if _, err := io.ReadFull(r, body[start:]); err != nil {
			return nil, err
		}
		if crlf, err := readLine(r); err != nil || len(crlf) != 0 {
			return nil, errors.New("chunk not followed by CRLF")
		}
	}
}

// readLine reads one CRLF- (or LF-) terminated line without its terminator.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return nil, unexpected(err)
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// unexpected: a connection that ends mid-answer is a truncated answer.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// dial connects to the socket, retrying for up to DialWait while nothing listens there yet.
func dial(ctx context.Context, socket string) (*os.File, error) {
	deadline := time.Now().Add(DialWait)
	for {
		f, err := connect(ctx, socket)
		if err == nil || time.Now().After(deadline) ||
			(!errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT)) {
			return f, err
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
	}
}

// connect opens a unix stream socket to path. The connect itself blocks (a unix socket's
// connect waits while the listener's backlog is full, where a non-blocking one fails with
// EAGAIN), bounded by ctx's deadline through SO_SNDTIMEO; the file is then made
// non-blocking so that reads and writes honour deadlines.
func connect(ctx context.Context, path string) (*os.File, error) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	if d, ok := ctx.Deadline(); ok {
		tv := syscall.NsecToTimeval(max(time.Until(d), time.Millisecond).Nanoseconds())
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_SNDTIMEO, &tv)
	}
	for {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: path})
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err == nil {
		err = syscall.SetNonblock(fd, true)
	}
	if err != nil {
		_ = syscall.Close(fd)
		return nil, os.NewSyscallError("connect", err)
	}
	return os.NewFile(uintptr(fd), path), nil
}
