package publish

// Release stops publishing a domain WITHOUT deleting its object: the domain migrated to another
// node, whose agentd adopts the object (same name and namespace) and moves its node label, spec
// and owner reference. Deleting here instead would race the destination's adoption and lose the
// object's identity (UID, history of executed commands). If the migration fails and the domain
// shows up here again, Upsert publishes it again. If no agentd adopts it, the object keeps
// naming this node until this node's next startup cleanup (RemoveAllExcept) deletes it.
func (p *Publisher) Release(uuid string) error {
	u, err := NormalizeUUID(uuid)
	if err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.entries, u)
	delete(p.seed, u)
	p.forgetLocked(u)
	p.mu.Unlock()
	return nil
}
