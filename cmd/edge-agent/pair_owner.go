package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// fileOwner is the user and group a file belongs to.
type fileOwner struct{ uid, gid int }

// serviceUser is the user the shipped unit runs the daemon as.
const serviceUser = "edge-agent"

// pairOwnership decides whose files `edge-agent pair` writes. The daemon
// reads and rotates the tokens as the user that owns the state directory
// (edge-agent under the shipped unit); `sudo edge-agent pair` used to leave
// links/ and tokens.json owned by root, and the daemon's link then failed
// with "permission denied".
//
// euid is the user pair runs as; owner owns dir, the directory the tokens
// go under (nil: it does not exist yet); service is the edge-agent user
// (nil: no such user, as on a development machine); retry is the command
// line to suggest with "sudo -u USER" in front. The result is:
//   - nil, nil: write as usual (run as the owner, or a directory this user
//     creates and the agent, run by the same user, will read);
//   - a user, nil: run as root for another user (the directory's owner, or
//     the service user when the directory is still to be made): write, then
//     hand every file and directory written to that user;
//   - nil, error: refuse; the error says the exact command to run.
func pairOwnership(euid int, owner *fileOwner, ownerName string, service *fileOwner, dir, retry string) (*fileOwner, error) {
	switch {
	case owner == nil && euid == 0:
		return service, nil
	case owner == nil, owner.uid == euid:
		return nil, nil
	case euid == 0:
		return owner, nil
	}
	return nil, fmt.Errorf("%s belongs to %s, and the tokens must be theirs for the agent to use them; run: sudo -u %s %s",
		dir, ownerName, ownerName, retry)
}

// ownerOf returns the owner of path and a name for it usable with sudo -u
// ("#UID" when the user has no name); nil when path does not exist.
func ownerOf(path string) (*fileOwner, string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, "", fmt.Errorf("%s: no owner information", path)
	}
	o := &fileOwner{uid: int(st.Uid), gid: int(st.Gid)}
	name := "#" + strconv.Itoa(o.uid)
	if u, err := user.LookupId(strconv.Itoa(o.uid)); err == nil {
		name = u.Username
	}
	return o, name, nil
}

// lookupService returns the service user's ids, nil when there is none.
func lookupService() *fileOwner {
	u, err := user.Lookup(serviceUser)
	if err != nil {
		return nil
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &fileOwner{uid: uid, gid: gid}
}

// chownAll hands the paths that exist to o, not following links; missing
// ones are skipped (pairing may have stopped before writing the tokens).
func chownAll(o *fileOwner, paths ...string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Lchown(p, o.uid, o.gid); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pairCommand is the command line to repeat under another user.
func pairCommand(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"\\$`!*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(append([]string{"edge-agent", "pair"}, q...), " ")
}
