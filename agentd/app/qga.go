package app

import (
	"context"
	"errors"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/qga"
	"guestagent.io/operator/agentd/service"
	"guestagent.io/operator/agentd/virt"
	gav1 "guestagent.io/operator/api/v1alpha1"
)

// NewQGA builds the QemuGuestAgentPoller from cfg and adapts it to what GuestAgentService needs.
// The poller's changes go to the adapter's subscribers (cfg.OnChange is replaced).
func NewQGA(cfg qga.Config) (service.QemuAgent, error) {
	a := qgaAdapter{changes: &changeFeed{}}
	cfg.OnChange = a.changes.notify
	p, err := qga.NewQemuGuestAgentPoller(cfg)
	if err != nil {
		return nil, err
	}
	a.p = p
	return a, nil
}

type qgaAdapter struct {
	p       *qga.QemuGuestAgentPoller
	changes *changeFeed
}

func (a qgaAdapter) Run(ctx context.Context) error { return a.p.Run(ctx) }
func (a qgaAdapter) HandleEvent(ev virt.Event)     { a.p.HandleEvent(ev) }
func (a qgaAdapter) Subscribe(f func(uuid string)) { a.changes.Subscribe(f) }

func (a qgaAdapter) Info(uuid string) *guest.Info {
	info, _ := a.p.Info(uuid)
	return info
}

func (a qgaAdapter) Stats(uuid string) *guest.Stats { return a.p.Stats(uuid) }

func (a qgaAdapter) State(uuid string) guest.QGAState {
	st, ok := a.p.State(uuid)
	if !ok {
		return guest.QGAState{Channel: guest.ChannelUnknown}
	}
	out := guest.QGAState{
		Channel:     st.Channel,
		Version:     st.Version,
		Supported:   st.SupportedCommands,
		Unsupported: st.UnsupportedCommands,
		Responsive:  st.Responsive,
		FSFreeze:    st.FSFreeze,
	}
	if e := st.LastError; e != nil && !st.Responsive {
		out.LastErrorClass = string(e.Class)
		out.LastError = e.Command + ": " + e.Message
	}
	return out
}

func (a qgaAdapter) Shutdown(ctx context.Context, uuid string, halt bool) error {
	mode := qga.ShutdownPowerdown
	if halt {
		mode = qga.ShutdownHalt
	}
	return classed(a.p.Shutdown(ctx, uuid, mode))
}

func (a qgaAdapter) Reboot(ctx context.Context, uuid string) error {
	return classed(a.p.Reboot(ctx, uuid))
}

func (a qgaAdapter) FreezeFilesystems(ctx context.Context, uuid string, mps []string) (bool, error) {
	state, err := a.p.FSFreeze(ctx, uuid, mps)
	return state == qga.FreezeFrozen, classed(err)
}

func (a qgaAdapter) ThawFilesystems(ctx context.Context, uuid string) error {
	return classed(a.p.FSThaw(ctx, uuid, nil))
}

func (a qgaAdapter) SetTime(ctx context.Context, uuid string) error {
	return classed(a.p.SetTime(ctx, uuid))
}

func (a qgaAdapter) Ping(ctx context.Context, uuid string) error { return classed(a.p.Ping(ctx, uuid)) }

func (a qgaAdapter) SetVCPUs(ctx context.Context, uuid string, count int) (string, error) {
	plan, err := a.p.SetVCPUs(ctx, uuid, count)
	if err != nil {
		return "", classed(err)
	}
	return plan.String(), nil
}

func (a qgaAdapter) Suspend(ctx context.Context, uuid string, mode gav1.SuspendMode) error {
	cmd := "guest-suspend-" + string(mode) // an unknown mode: refused by the poller, never sent
	switch mode {
	case gav1.SuspendRam, "":
		cmd = qga.CmdSuspendRAM
	case gav1.SuspendHybrid:
		cmd = qga.CmdSuspendHybrid
	case gav1.SuspendDisk:
		cmd = qga.CmdSuspendDisk
	}
	return classed(a.p.Suspend(ctx, uuid, cmd))
}

// classErr exposes a QGA error class to the service's error classification.
type classErr struct {
	class string
	err   error
}

func (e classErr) Error() string      { return e.err.Error() }
func (e classErr) Unwrap() error      { return e.err }
func (e classErr) ErrorClass() string { return e.class }

func classed(err error) error {
	if err == nil {
		return nil
	}
	var qe *qga.Error
	if errors.As(err, &qe) {
		return classErr{class: string(qe.Class), err: err}
	}
	return err
}
