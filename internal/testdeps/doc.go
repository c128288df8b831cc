// Package testdeps holds one test: every command the project's tests,
// benchmarks and kernel matrix execute is installed by the make target
// that runs them (test-deps, bench-deps, test-kernels-deps) or is part of
// every Debian system. A machine that already has a tool hides a missing
// install step; this test does not.
package testdeps
