package publish

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"guestagent.io/operator/agentd/guest"
	"guestagent.io/operator/api/v1alpha1"
)

// agentLinks is whether each agent of a domain is connected.
type agentLinks struct{ qga, oga bool }

func linksOf(a AgentState) agentLinks {
	return agentLinks{qga: a.QGA.Channel == guest.ChannelConnected, oga: a.OGA.Channel == guest.ChannelConnected}
}

// Event reasons and actions of agent connection transitions.
const (
	ReasonAgentConnected    = "AgentConnected"
	ReasonAgentDisconnected = "AgentDisconnected"
)

// connectionEvents emits one Event per agent that connected or disconnected since the domain's
// previous Upsert, on the domain's GuestAgentStatus.
func (p *Publisher) connectionEvents(d *Desired, prev, now agentLinks) {
	if p.opts.Events == nil || prev == now {
		return
	}
	ns, name := p.target(d)
	obj := &v1alpha1.GuestAgentStatus{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	emit := func(was, is bool, agent string) {
		switch {
		case !was && is:
			p.opts.Events.Eventf(obj, nil, corev1.EventTypeNormal, ReasonAgentConnected, "Connect", "%s connected", agent)
		case was && !is:
			p.opts.Events.Eventf(obj, nil, corev1.EventTypeWarning, ReasonAgentDisconnected, "Disconnect", "%s disconnected", agent)
		}
	}
	emit(prev.qga, now.qga, "QEMU guest agent")
	emit(prev.oga, now.oga, "oVirt guest agent")
}
