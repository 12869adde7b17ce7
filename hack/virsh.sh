# Sourced by the hack/ scripts that call virsh.
# virsh started with a controlling terminal launches polkit's text agent (pkttyagent), which
# prints "Authorization not available. Check if polkit service is running…" on every call when
# polkitd does not run (root needs no authorization here). Run it in a session of its own, without
# a controlling terminal, so it does not start the agent.
virsh() { setsid -w virsh "$@"; }
