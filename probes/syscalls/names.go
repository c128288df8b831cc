package syscalls

import "strconv"

//go:generate go run ../../internal/syscalltable/cmd/syscalltable -pkg syscalls -out .

// Name returns the name of system call nr in the table of the architecture
// the agent is built for (zz_names_<arch>.go, generated from the Linux UAPI
// headers), or "sys_<nr>" for a number the table does not know. It does not
// allocate for known numbers.
func Name(nr uint32) string {
	if uint64(nr) < uint64(len(syscallNames)) {
		if s := syscallNames[nr]; s != "" {
			return s
		}
	}
	return "sys_" + strconv.FormatUint(uint64(nr), 10)
}
