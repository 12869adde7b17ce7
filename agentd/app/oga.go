package app

import (
	"context"
	"time"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/agentd/oga"
	"guestagent.io/operator/agentd/service"
)

// newOGA builds the oVirt guest agent Listener and adapts it to what GuestAgentService needs.
// The Listener's changes go to the adapter's subscribers (opts.OnChange is replaced).
func newOGA(opts oga.ListenerOptions) (*oga.Listener, service.OvirtAgent) {
	a := ogaAdapter{changes: &changeFeed{}}
	opts.OnChange = a.changes.notify
	a.l = oga.NewListener(opts)
	return a.l, a
}

type ogaAdapter struct {
	l       *oga.Listener
	changes *changeFeed
}

func (a ogaAdapter) Run(ctx context.Context) error { return a.l.Run(ctx) }
func (a ogaAdapter) Subscribe(f func(uuid string)) { a.changes.Subscribe(f) }
func (a ogaAdapter) Serve(uuid, socketPath string, initialAPIVersion int) {
	a.l.Add(uuid, socketPath, initialAPIVersion)
}
func (a ogaAdapter) Served(uuid string) bool { return a.l.Agent(uuid) != nil }
func (a ogaAdapter) Remove(uuid string)      { a.l.Remove(uuid) }

func (a ogaAdapter) State(uuid string) (guest.OGAState, bool) {
	ag := a.l.Agent(uuid)
	if ag == nil {
		return guest.OGAState{}, false
	}
	st := ag.State()
	return guest.OGAState{Present: true, Channel: st.Channel, Spoken: st.Spoken, APIVersion: st.APIVersion, Responsive: st.Responsive}, true
}

func (a ogaAdapter) Info(uuid string) *guest.Info {
	if ag := a.l.Agent(uuid); ag != nil {
		return ag.Info()
	}
	return nil
}

// agent returns the domain's agent, or oga.ErrNotConnected when it is not served.
func (a ogaAdapter) agent(uuid string) (*oga.OvirtGuestAgent, error) {
	if ag := a.l.Agent(uuid); ag != nil {
		return ag, nil
	}
	return nil, oga.ErrNotConnected
}

func (a ogaAdapter) Shutdown(ctx context.Context, uuid string, delay time.Duration, message string, reboot bool) error {
	ag, err := a.agent(uuid)
	if err != nil {
		return err
	}
	return ag.Shutdown(ctx, delay, message, reboot)
}

func (a ogaAdapter) LifecycleEvent(ctx context.Context, uuid, hook string, failure, wait bool, timeout time.Duration) error {
	ag, err := a.agent(uuid)
	if err != nil {
		return err
	}
	return ag.LifecycleEvent(ctx, hook, failure, wait, timeout)
}

func (a ogaAdapter) LockScreen(ctx context.Context, uuid string) error {
	ag, err := a.agent(uuid)
	if err != nil {
		return err
	}
	return ag.LockScreen(ctx)
}

func (a ogaAdapter) LogOff(ctx context.Context, uuid string) error {
	ag, err := a.agent(uuid)
	if err != nil {
		return err
	}
	return ag.LogOff(ctx)
}

func (a ogaAdapter) SetNumberOfCPUs(ctx context.Context, uuid string, count int) (int, error) {
	ag, err := a.agent(uuid)
	if err != nil {
		return 0, err
	}
	return ag.SetNumberOfCPUs(ctx, count, 0)
}

func (a ogaAdapter) Hibernate(ctx context.Context, uuid, state string) error {
	ag, err := a.agent(uuid)
	if err != nil {
		return err
	}
	return ag.Hibernate(ctx, oga.HibernateState(state))
}
