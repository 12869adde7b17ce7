package qga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"guestagent.io/operator/agentd/qga/qgaclient"
)

// SocketAPI implements DomainAPI over direct unix-socket connections to agents (qgaclient), for
// QEMU VMs not run by libvirt and for tests against a host qemu-ga. Path maps a domain UUID to
// its agent socket. One connection per domain is kept and re-dialled after errors.
type SocketAPI struct {
	Path func(uuid string) (string, bool)

	mu    sync.Mutex
	conns map[string]*qgaclient.Client
}

var _ DomainAPI = (*SocketAPI)(nil)

// NewSocketAPI returns a SocketAPI resolving sockets with path.
func NewSocketAPI(path func(uuid string) (string, bool)) *SocketAPI {
	return &SocketAPI{Path: path, conns: map[string]*qgaclient.Client{}}
}

// Close closes all connections (draining them first).
func (s *SocketAPI) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u, c := range s.conns {
		_ = c.Close()
		delete(s.conns, u)
	}
	return nil
}

// Probe checks that the domain's agent answers: an open connection on which the agent answered
// at or after since needs nothing more (the poller's calls prove it alive); otherwise it dials
// the socket if no connection is open and synchronises (guest-sync-delimited), or asks
// guest-sync on the open one. A connection that fails is dropped, so the next call or probe
// dials afresh. This is how agentd/qgasock derives the channel state of a socket domain; it
// shares the connection with the poller (the agent serves one client at a time).
func (s *SocketAPI) Probe(ctx context.Context, uuid string, timeout time.Duration, since time.Time) error {
	const cmd = "guest-sync-delimited"
	s.mu.Lock()
	c := s.conns[uuid]
	s.mu.Unlock()
	if c != nil && !since.IsZero() && !c.LastAnswer().Before(since) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if c == nil {
		_, err := s.client(ctx, uuid, cmd, timeout) // a fresh connection has just synchronised
		return err
	}
	if err := c.Sync(ctx); err != nil {
		s.drop(uuid, c)
		return classifySocket(cmd, err)
	}
	return nil
}

// Forget closes the domain's connection (the domain is gone).
func (s *SocketAPI) Forget(uuid string) {
	s.mu.Lock()
	c := s.conns[uuid]
	delete(s.conns, uuid)
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (s *SocketAPI) client(ctx context.Context, uuid, cmd string, timeout time.Duration) (*qgaclient.Client, error) {
	s.mu.Lock()
	c := s.conns[uuid]
	s.mu.Unlock()
	if c != nil {
		return c, nil
	}
	p, ok := s.Path(uuid)
	if !ok {
		return nil, &Error{Class: ErrDomainNotRunning, Command: cmd, Err: fmt.Errorf("no agent socket known for %s", uuid)}
	}
	c, err := qgaclient.Dial(ctx, p, timeout)
	if err != nil {
		return nil, classifySocket(cmd, err)
	}
	s.mu.Lock()
	if old := s.conns[uuid]; old != nil {
		s.mu.Unlock()
		_ = c.Close()
		return old, nil
	}
	s.conns[uuid] = c
	s.mu.Unlock()
	return c, nil
}

func (s *SocketAPI) drop(uuid string, c *qgaclient.Client) {
	s.mu.Lock()
	if s.conns[uuid] == c {
		delete(s.conns, uuid)
	}
	s.mu.Unlock()
	_ = c.Close()
}

func (s *SocketAPI) call(ctx context.Context, uuid, cmd string, args any, timeout time.Duration) (json.RawMessage, error) {
	c, err := s.client(ctx, uuid, cmd, timeout) // the dial and each call are bounded by timeout
	if err != nil {
		return nil, err
	}
	raw, err := c.CallWithin(ctx, cmd, args, timeout)
	if err != nil {
		var ae *qgaclient.AgentError
		if !errors.As(err, &ae) {
			s.drop(uuid, c) // transport trouble: start afresh next time
		}
		return nil, classifySocket(cmd, err)
	}
	return raw, nil
}

func classifySocket(cmd string, err error) error {
	var ae *qgaclient.AgentError
	switch {
	case errors.As(err, &ae):
		return classifyAgentReply(cmd, &AgentReplyError{Class: ae.Class, Desc: ae.Desc})
	case qgaclient.IsTimeout(err):
		return &Error{Class: ErrTimeout, Command: cmd, Err: err}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return &Error{Class: ErrNotConnected, Command: cmd, Err: err}
	}
	return &Error{Class: ErrAgentError, Command: cmd, Err: err}
}

func decode[T any](cmd string, raw json.RawMessage) (T, error) {
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, &Error{Class: ErrAgentError, Command: cmd, Err: fmt.Errorf("malformed reply: %w", err)}
	}
	return v, nil
}

// Raw implements DomainAPI.
func (s *SocketAPI) Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error) {
	return s.call(ctx, uuid, cmd, nil, timeout)
}

// GuestInfo implements DomainAPI with the QGA command behind the type.
func (s *SocketAPI) GuestInfo(ctx context.Context, uuid string, t InfoType, timeout time.Duration) (*GuestInfoReply, error) {
	cmd := t.Command()
	if cmd == "" {
		return nil, &Error{Class: ErrUnsupported, Command: fmt.Sprintf("guest-info-type-%d", t), Err: errors.New("exactly one known info type required")}
	}
	raw, err := s.call(ctx, uuid, cmd, nil, timeout)
	if err != nil {
		return nil, err
	}
	out := &GuestInfoReply{}
	switch t {
	case InfoUsers:
		out.Users, err = decode[[]UserInfo](cmd, raw)
	case InfoOS:
		out.OS, err = decode[*OSInfo](cmd, raw)
	case InfoTimezone:
		out.Timezone, err = decode[*TimezoneInfo](cmd, raw)
	case InfoHostname:
		out.Hostname, err = decode[*HostName](cmd, raw)
	case InfoFilesystem:
		out.FS, err = decode[[]FSInfo](cmd, raw)
	case InfoDisks:
		out.Disks, err = decode[[]DiskInfo](cmd, raw)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Interfaces implements DomainAPI.
func (s *SocketAPI) Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error) {
	raw, err := s.call(ctx, uuid, CmdInterfaces, nil, timeout)
	if err != nil {
		return nil, err
	}
	return decode[[]NetInterface](CmdInterfaces, raw)
}

// VCPUs implements DomainAPI.
func (s *SocketAPI) VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error) {
	raw, err := s.call(ctx, uuid, CmdVCPUs, nil, timeout)
	if err != nil {
		return nil, err
	}
	return decode[[]VCPU](CmdVCPUs, raw)
}

// Shutdown implements DomainAPI (guest-shutdown never answers on success).
func (s *SocketAPI) Shutdown(ctx context.Context, uuid string, mode ShutdownMode, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := s.client(ctx, uuid, CmdShutdown, timeout)
	if err != nil {
		return err
	}
	if err := c.Send(ctx, CmdShutdown, map[string]any{"mode": string(mode)}); err != nil {
		s.drop(uuid, c)
		return classifySocket(CmdShutdown, err)
	}
	return nil
}

// Reboot implements DomainAPI.
func (s *SocketAPI) Reboot(ctx context.Context, uuid string, timeout time.Duration) error {
	return s.Shutdown(ctx, uuid, "reboot", timeout)
}

// Suspend implements DomainAPI: it is refused. A domain reached only through its agent socket has
// no libvirt lifecycle events, so a suspend's outcome could never be confirmed.
func (s *SocketAPI) Suspend(_ context.Context, _ string, cmd string, _ time.Duration) error {
	return &Error{Class: ErrUnsupported, Command: cmd,
		Err: errors.New("a suspend needs libvirt (its PMSUSPENDED event is the outcome); this domain is reached only through its agent socket")}
}

// FSFreeze implements DomainAPI.
func (s *SocketAPI) FSFreeze(ctx context.Context, uuid string, mps []string, timeout time.Duration) error {
	if len(mps) == 0 {
		_, err := s.call(ctx, uuid, CmdFSFreeze, nil, timeout)
		return err
	}
	_, err := s.call(ctx, uuid, CmdFSFreezeList, map[string]any{"mountpoints": mps}, timeout)
	return err
}

// FSThaw implements DomainAPI (QGA thaws everything; mountpoints are ignored).
func (s *SocketAPI) FSThaw(ctx context.Context, uuid string, _ []string, timeout time.Duration) error {
	_, err := s.call(ctx, uuid, CmdFSThaw, nil, timeout)
	return err
}

// SetTime implements DomainAPI.
func (s *SocketAPI) SetTime(ctx context.Context, uuid string, t time.Time, timeout time.Duration) error {
	_, err := s.call(ctx, uuid, CmdSetTime, map[string]any{"time": t.UnixNano()}, timeout)
	return err
}

// SetVCPUs implements DomainAPI with guest-set-vcpus. The agent stops at the first vCPU it
// cannot change and answers with the number it changed.
func (s *SocketAPI) SetVCPUs(ctx context.Context, uuid string, ids []int, online bool, timeout time.Duration) error {
	type entry struct {
		LogicalID int  `json:"logical-id"`
		Online    bool `json:"online"`
	}
	list := make([]entry, len(ids))
	for i, id := range ids {
		list[i] = entry{LogicalID: id, Online: online}
	}
	raw, err := s.call(ctx, uuid, CmdSetVCPUs, map[string]any{"vcpus": list}, timeout)
	if err != nil {
		return err
	}
	n, err := decode[int](CmdSetVCPUs, raw)
	if err != nil {
		return err
	}
	if n != len(ids) {
		return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: fmt.Errorf("the agent changed %d of %d vCPUs (%s)", n, len(ids), FormatCPUList(ids))}
	}
	return nil
}
