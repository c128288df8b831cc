// Workload of the uprobe probe's many-functions test: 256 functions f000 …
// f255, each called exactly as often as the arguments say, after a line on
// stdin (so the test attaches first).
//
//   manyfuncs N   N rounds; round r calls f<i> (i % 7) + 1 times, so f<i>
//                 is called N * ((i % 7) + 1) times in all; prints the sum
//                 of the calls made, the test's oracle
#include <stdio.h>
#include <stdlib.h>

volatile int sink;

#define F(i) __attribute__((noinline, noipa)) void f##i(void) { sink++; }
#define F10(p) F(p##0) F(p##1) F(p##2) F(p##3) F(p##4) F(p##5) F(p##6) F(p##7) F(p##8) F(p##9)
#define F100(p) F10(p##0) F10(p##1) F10(p##2) F10(p##3) F10(p##4) F10(p##5) F10(p##6) F10(p##7) F10(p##8) F10(p##9)

F100(0) F100(1)
F10(20) F10(21) F10(22) F10(23) F10(24)
F(250) F(251) F(252) F(253) F(254) F(255)

#define R(i) f##i,
#define R10(p) R(p##0) R(p##1) R(p##2) R(p##3) R(p##4) R(p##5) R(p##6) R(p##7) R(p##8) R(p##9)
#define R100(p) R10(p##0) R10(p##1) R10(p##2) R10(p##3) R10(p##4) R10(p##5) R10(p##6) R10(p##7) R10(p##8) R10(p##9)

static void (*const fns[256])(void) = {
	R100(0) R100(1)
	R10(20) R10(21) R10(22) R10(23) R10(24)
	R(250) R(251) R(252) R(253) R(254) R(255)
};

int main(int argc, char **argv)
{
	char line[16];
	long n, r, total = 0;
	int i, k;

	if (argc != 2) {
		fprintf(stderr, "usage: manyfuncs N\n");
		return 2;
	}
	n = atol(argv[1]);
	if (!fgets(line, sizeof(line), stdin))
		return 3;
	for (r = 0; r < n; r++)
		for (i = 0; i < 256; i++)
			for (k = 0; k <= i % 7; k++) {
				fns[i]();
				total++;
			}
	printf("%ld\n", total);
	return 0;
}
