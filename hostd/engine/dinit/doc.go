// Package dinit is the init of containers run with docker run --init: PID 1
// in the container, it starts the command as its child, forwards the
// signals it gets to it, reaps every orphan that is reparented to it, and
// exits with the child's status. The static shim binary (cmd/hostd-shim)
// runs it when called as docker-init, the name Docker mounts its init at.
package dinit
