package qga

import (
	"context"
	"errors"
	"testing"
	"time"

	"libvirt.org/go/libvirt"
)

// frozenReply is what qemu-ga 7.2 answers for a command it disabled for a filesystem freeze.
func frozenReply(cmd string) *Error {
	return classifyAgentReply(cmd, &AgentReplyError{Class: "CommandNotFound",
		Desc: "Command " + cmd + " has been disabled: the agent is in frozen state"})
}

func TestFrozenIsNeverUnsupported(t *testing.T) {
	if c := frozenReply(CmdOSInfo).Class; c != ErrFrozen {
		t.Errorf("agent reply: class %s, want %s", c, ErrFrozen)
	}
	// libvirt wraps the agent's error text in its own error.
	lerr := libvirt.Error{Code: libvirt.ERR_AGENT_COMMAND_FAILED, Message: "guest agent command failed: unable to execute " +
		"QEMU agent command 'guest-get-osinfo': Command guest-get-osinfo has been disabled: the agent is in frozen state"}
	if c := ClassOf(classifyLibvirt(CmdOSInfo, lerr)); c != ErrFrozen {
		t.Errorf("libvirt error: class %s, want %s", c, ErrFrozen)
	}
	if c := classifyAgentReply(CmdOSInfo, &AgentReplyError{Class: "CommandNotFound", Desc: "The command guest-get-osinfo has not been found"}).Class; c != ErrUnsupported {
		t.Errorf("a really missing command: class %s, want %s", c, ErrUnsupported)
	}
}

// While frozen, qemu-ga lists most commands as disabled and refuses them. Nothing becomes
// unsupported, the freeze is reported, and after the thaw every group refreshes again.
func TestPollerFreezeLongerThanThreePeriods(t *testing.T) {
	h := newHarness(t, nil)
	g := defaultGuest("g")
	h.api.add("g", g)
	h.doms.set(running("g"))
	h.step(t, 0)
	st, _ := h.p.State("g")
	if len(st.UnsupportedCommands) != 0 || st.FSFreeze != "" {
		t.Fatalf("before the freeze: %+v", st)
	}
	before := map[string]int{}
	for _, c := range []string{CmdUsers, CmdOSInfo, CmdHostName, CmdInterfaces, CmdVCPUs, CmdFSInfo, CmdDisks} {
		before[c] = h.api.count("g", c)
	}

	// Freeze: what qemu-ga 7.2 does (guest-info lists the disabled commands, they fail).
	h.api.mu.Lock()
	g.freeze = "frozen"
	g.caps = allCommands(CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo,
		CmdDisks, CmdShutdown, CmdFSFreeze, CmdFSFreezeList, CmdSetTime)
	for _, c := range []string{CmdUsers, CmdOSInfo, CmdTimezone, CmdHostName, CmdInterfaces, CmdDevices, CmdVCPUs, CmdFSInfo, CmdDisks} {
		g.errs[c] = frozenReply(c)
	}
	h.api.mu.Unlock()
	period := 300 * time.Second // the longest poll period (capabilities)
	for range 4 {
		h.step(t, period)
		st, _ = h.p.State("g")
		if len(st.UnsupportedCommands) != 0 {
			t.Fatalf("frozen agent: unsupported = %v", st.UnsupportedCommands)
		}
		if st.FSFreeze != FreezeFrozen {
			t.Fatalf("frozen agent: fsFreeze = %q", st.FSFreeze)
		}
	}
	if st.LastError == nil || st.LastError.Class != ErrFrozen {
		t.Errorf("last error = %+v", st.LastError)
	}

	// Thaw: every group is asked again and refreshes; the state says thawed.
	h.api.mu.Lock()
	g.freeze = ""
	g.caps = allCommands()
	g.errs = map[string]error{}
	g.hostname = "after-thaw"
	h.api.mu.Unlock()
	mid := map[string]int{}
	for c := range before {
		mid[c] = h.api.count("g", c)
	}
	h.step(t, period)
	for c := range before {
		if h.api.count("g", c) <= mid[c] {
			t.Errorf("%s not asked again after the thaw", c)
		}
	}
	st, _ = h.p.State("g")
	info, _ := h.p.Info("g")
	if st.FSFreeze != FreezeThawed || len(st.UnsupportedCommands) != 0 || info.Hostname == nil || info.Hostname.Name != "after-thaw" {
		t.Errorf("after the thaw: state %+v, hostname %+v", st, info.Hostname)
	}
}

// A successful freeze records what guest-fsfreeze-status says afterwards: a freeze that froze
// nothing (no freezable filesystem, or no listed mountpoint matched) leaves qemu-ga thawed, and
// the state must say so at once, not Frozen until the next poll. When the status cannot be read,
// a successful freeze still counts as Frozen.
func TestFSFreezeRecordsTheAgentsFreezeStatus(t *testing.T) {
	agentErr := &Error{Class: ErrAgentError, Command: CmdFSFreezeState, Err: errors.New("boom")}
	for _, tc := range []struct {
		name          string
		mountpoints   []string
		freezeNothing bool
		statusErr     error
		statusOff     bool // guest-fsfreeze-status not enabled in guest-info
		want          string
		wantReads     int // guest-fsfreeze-status calls made by the freeze
	}{
		{name: "froze filesystems", want: FreezeFrozen, wantReads: 1},
		{name: "nothing to freeze", freezeNothing: true, want: FreezeThawed, wantReads: 1},
		{name: "no listed mountpoint matched", mountpoints: []string{"/nope"}, freezeNothing: true, want: FreezeThawed, wantReads: 1},
		{name: "status read fails", freezeNothing: true, statusErr: agentErr, want: FreezeFrozen, wantReads: 1},
		{name: "status command not offered", freezeNothing: true, statusOff: true, want: FreezeFrozen, wantReads: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			g := defaultGuest("f")
			g.freezeNothing = tc.freezeNothing
			if tc.statusErr != nil {
				g.errs[CmdFSFreezeState] = tc.statusErr
			}
			if tc.statusOff {
				g.caps = allCommands(CmdFSFreezeState)
			}
			h.api.add("f", g)
			h.doms.set(running("f"))
			h.step(t, 0)
			reads := h.api.count("f", CmdFSFreezeState)
			changes := h.changeCount("f")
			got, err := h.p.FSFreeze(context.Background(), "f", tc.mountpoints)
			if err != nil {
				t.Fatalf("freeze: %v", err)
			}
			st, _ := h.p.State("f")
			if st.FSFreeze != tc.want || got != tc.want {
				t.Errorf("fsFreeze after a successful freeze = %q (returned %q), want %q", st.FSFreeze, got, tc.want)
			}
			if n := h.api.count("f", CmdFSFreezeState) - reads; n != tc.wantReads {
				t.Errorf("guest-fsfreeze-status calls = %d, want %d", n, tc.wantReads)
			}
			if h.changeCount("f") <= changes {
				t.Error("the new freeze state was not notified")
			}
			if len(st.UnsupportedCommands) != 0 {
				t.Errorf("unsupported = %v", st.UnsupportedCommands)
			}
		})
	}
}
