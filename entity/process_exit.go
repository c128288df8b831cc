package entity

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
)

// MarkExited records that the process (pid, startTicks) exited, as an exit
// event reported it, for the generation being collected: Process(pid)
// returns its Resource without reading /proc and Gone(pid) is true, so its
// series of this interval are exported as its final ones and then deleted.
// Call it after NextGeneration and before the probes read their maps.
//
// startTicks is the kernel's start time of the process (the event reads
// task->start_boottime; 0 only for a process started in the first tick
// after boot), so the event always gives a whole identity.
//
// An exit event that arrives after /proc already showed the process gone
// (in an earlier generation) is ignored. A process the resolver saw alive
// keeps the Resource it was described with; one it never saw, or saw only
// without an identity, gets its identity from the event (pid, creation
// time from startTicks, executable name), which is the identity its events
// carry too.
func (r *ProcessResolver) MarkExited(pid uint32, startTicks uint64, comm string) {
	e := r.cache[pid]
	if e != nil && e.res != nil && e.startTicks == startTicks && !e.alive && e.checked < r.gen {
		// Found gone by /proc in an earlier generation, before its exit
		// event arrived: its final values went out then and its keys were
		// deleted. Marking it again would export whatever a new process
		// with this pid added since as this one's.
		return
	}
	if e == nil || e.res == nil || e.startTicks != startTicks {
		e = &processEntry{startTicks: startTicks, res: r.describeExited(pid, startTicks, comm)}
		r.cache[pid] = e
	}
	e.alive = false
	e.checked, e.lastUsed = r.gen, r.gen
}

// describeExited is the identity of a process known only from the kernel
// (an exit event or the kernel's record): pid, creation time from the
// kernel's start time and the kernel's command name as
// process.executable.name.
func (r *ProcessResolver) describeExited(pid uint32, startTicks uint64, comm string) *resource.Resource {
	return ProcessResource(r.host, pid, r.CreationTime(startTicks), KernelDescription(comm)...)
}

// ProcessResource is the one constructor of a process's Resource, for its
// metrics and its events alike: the host's attributes, the process's
// identity (process.pid, process.creation.time) and what describes it.
func ProcessResource(host []attribute.KeyValue, pid uint32, creation string, desc ...attribute.KeyValue) *resource.Resource {
	attrs := make([]attribute.KeyValue, 0, len(host)+2+len(desc))
	attrs = append(attrs, host...)
	attrs = append(attrs, AttrProcessPID.Int64(int64(pid)), AttrProcessCreationTime.String(creation))
	return resource.NewWithAttributes(SchemaURL, append(attrs, desc...)...)
}

// KernelDescription describes a process known from the kernel only: the
// command name the kernel recorded (comm, which the process may have
// changed) as process.executable.name, none when empty.
func KernelDescription(comm string) []attribute.KeyValue {
	if comm == "" {
		return nil
	}
	return []attribute.KeyValue{AttrProcessExecutableName.String(kernelString([]byte(comm), maxCommLen))}
}

// CheckLiveness revalidates against /proc, now, every cached process that
// was alive at its last check. Call it after NextGeneration and before the
// probes read their maps: a process found gone here died before the read,
// so the values then read are its final ones. Left to Process (after the
// read), a process dying in between would have its series finalized with
// values it added to afterwards.
func (r *ProcessResolver) CheckLiveness() {
	for pid, e := range r.cache {
		if !e.alive || e.checked == r.gen {
			continue
		}
		used := e.lastUsed
		r.Process(pid)
		// Checking is not using: an idle process is still forgotten after
		// keepGenerations.
		if ne := r.cache[pid]; ne != nil {
			ne.lastUsed = used
		}
	}
}

// deferred reports whether e, a process first resolved in this generation,
// already gone from /proc and unknown to the kernel's record (no
// identity), must wait a generation before its series are final. Its keys
// were read before /proc was checked, so it may have died in between,
// after adding to them. With exit events, its exit event (or, if that was
// dropped, the next generation) finalizes it, once the values read are
// surely final, and gives it its identity; without them, it is final at
// once. Its series are not exported while it waits (ProcessSet holds
// them).
func (r *ProcessResolver) deferred(e *processEntry) bool {
	return r.ExitEvents && e.res == nil && e.created == r.gen && !r.final
}

// FinalGeneration says that the generation being collected is the last
// one (the agent is stopping): nothing waits for a later generation, so a
// process first met already gone and without an identity is final now
// (its series fold into the host's overflow series) instead of deferred.
func (r *ProcessResolver) FinalGeneration() { r.final = true }
