/* Load generator for the echo benchmarks: one thread, epoll, loopback only.
 *
 *   loadgen SCENARIO PORT [-n CONNS] [-t SECONDS] [-m MIB]
 *     echo   N connections; each sends 64 bytes, waits for the 64 back, repeats
 *     churn  N parallel workers; each connects, echoes 64 bytes, closes, repeats
 *     bulk   N connections; each streams MIB MiB while reading the echo back
 *     idle   opens N connections (one 64-byte echo each) and holds them
 *
 * Every byte that comes back is checked against what was sent, so a server
 * that drops, duplicates or corrupts data fails the run instead of posting a
 * number. Protocol with bench/run.py: after a short warm-up print "ready",
 * wait for a line on stdin, run the measured phase, print one JSON line,
 * wait for a line on stdin (or EOF), close everything, exit 0. Any failure:
 * a message on stderr and exit status 2. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG 64
#define PRIME 65521            /* stream pattern period, not a chunk multiple */
#define CHUNK (256 * 1024)

enum { IDLE, CONNECTING, SENDING, WAITING };
typedef struct {
  int fd, id, state;
  long long round, sent, recvd, total;   /* bulk: byte counts and target */
  int wpos, rpos;
  unsigned char out[MSG], in[2 * MSG];  /* room to see surplus bytes */
} conn_t;

static int port, epfd, nconns = 50, active;  /* active: start new rounds */
static double seconds = 5.0;
static long long mib = 64, rounds, done_conns;
static const char *scenario;
static conn_t *conns;
static unsigned char pattern[PRIME + CHUNK], rbuf[CHUNK];

static void die(const char *fmt, ...) {
  va_list ap; va_start(ap, fmt);
  fprintf(stderr, "loadgen %s: ", scenario); vfprintf(stderr, fmt, ap);
  fputc('\n', stderr); va_end(ap); exit(2);
}
static double now(void) {
  struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
static void wait_line(void) {  /* a line or EOF on stdin */
  int ch; while ((ch = getchar()) != EOF && ch != '\n') {}
}
static void watch(conn_t *c, int op, unsigned events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(epfd, op, c->fd, &ev) < 0) die("epoll_ctl: %s", strerror(errno));
}

/* Opens a non-blocking connection; the result arrives as EPOLLOUT. */
static void open_conn(conn_t *c) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                           .sin_addr.s_addr = htonl(0x7f000001)};
  int one = 1;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) die("socket: %s", strerror(errno));
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS)
    die("connect: %s", strerror(errno));
  c->state = CONNECTING; c->wpos = c->rpos = 0; c->sent = c->recvd = 0;
  watch(c, EPOLL_CTL_ADD, EPOLLOUT);
}
static void close_conn(conn_t *c) {
  close(c->fd); c->fd = -1; c->state = IDLE;
}

/* The 64-byte message of round r on connection id: differs every round. */
static void start_round(conn_t *c) {
  for (int i = 0; i < MSG; i++)
    c->out[i] = (unsigned char)(c->id * 131 + c->round * 7 + i * 13 + (c->round >> 8));
  c->wpos = c->rpos = 0; c->state = SENDING;
}

static void flush_msg(conn_t *c) {  /* send what is left of out[], then wait */
  while (c->wpos < MSG) {
    ssize_t n = send(c->fd, c->out + c->wpos, MSG - c->wpos, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) { watch(c, EPOLL_CTL_MOD, EPOLLOUT); return; }
      die("send: %s", strerror(errno));
    }
    c->wpos += n;
  }
  c->state = WAITING;
  watch(c, EPOLL_CTL_MOD, EPOLLIN);
}

/* A 64-byte echo finished on c: count it, then continue per scenario. */
static void round_done(conn_t *c) {
  rounds++; c->round++;
  if (!strcmp(scenario, "churn")) {
    close_conn(c);
    if (active) open_conn(c);
  } else if (!strcmp(scenario, "echo") && active) {
    start_round(c); flush_msg(c);
  } else {
    c->state = IDLE;  /* idle scenario (and echo after the phase): hold it */
    watch(c, EPOLL_CTL_MOD, EPOLLIN);  /* any byte now is a server bug */
  }
}

static void on_msg_event(conn_t *c, unsigned ev) {
  if (c->state == CONNECTING) {
    int err = 0; socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) die("connect: %s", strerror(err));
    start_round(c); flush_msg(c); return;
  }
  if (c->state == SENDING) { flush_msg(c); return; }
  if (!(ev & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  ssize_t n = recv(c->fd, c->in + c->rpos, sizeof c->in - c->rpos, 0);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) die("conn %d round %lld: %s after %d of %d bytes", c->id, c->round,
                  n ? strerror(errno) : "server closed", c->rpos, MSG);
  if (c->state != WAITING) die("conn %d: %zd unexpected bytes after round %lld", c->id, n, c->round);
  c->rpos += n;
  if (c->rpos > MSG) die("conn %d round %lld: %d bytes echoed for %d sent", c->id, c->round, c->rpos, MSG);
  if (c->rpos < MSG) return;
  if (memcmp(c->in, c->out, MSG))
    die("conn %d round %lld: echoed bytes differ from the bytes sent", c->id, c->round);
  round_done(c);
}

static void on_bulk_event(conn_t *c, unsigned ev) {
  if (c->state == CONNECTING) {
    int err = 0; socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) die("connect: %s", strerror(err));
    c->state = IDLE; watch(c, EPOLL_CTL_MOD, EPOLLIN); return;  /* until the phase */
  }
  if ((ev & EPOLLOUT) && c->sent < c->total) {
    long long left = c->total - c->sent;
    ssize_t n = send(c->fd, pattern + (c->sent + c->id) % PRIME,
                     left < CHUNK ? left : CHUNK, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN) die("send: %s", strerror(errno));
    if (n > 0) c->sent += n;
    if (c->sent == c->total) watch(c, EPOLL_CTL_MOD, EPOLLIN);
  }
  if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) die("conn %d: %s after %lld of %lld bytes", c->id,
                    n ? strerror(errno) : "server closed", c->recvd, c->total);
    if (c->recvd + n > c->sent) die("conn %d: more bytes echoed than sent", c->id);
    if (memcmp(rbuf, pattern + (c->recvd + c->id) % PRIME, n))
      die("conn %d: echoed bytes differ from the bytes sent near offset %lld", c->id, c->recvd);
    c->recvd += n;
    if (c->recvd == c->total) { done_conns++; c->state = IDLE; }
  }
}

/* Runs the event loop until finished() is true; dies if nothing happens for 10 s. */
static void pump(int (*finished)(void), double deadline) {
  struct epoll_event evs[256];
  double last = now();
  while (!finished()) {
    if (deadline > 0 && now() >= deadline) active = 0;
    int n = epoll_wait(epfd, evs, 256, 100);
    if (n < 0 && errno != EINTR) die("epoll_wait: %s", strerror(errno));
    if (n > 0) last = now();
    else if (now() - last > 10) die("stalled: no progress for 10 s (%lld rounds done)", rounds);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (!strcmp(scenario, "bulk")) on_bulk_event(c, evs[i].events);
      else on_msg_event(c, evs[i].events);
    }
  }
}
static int all_idle(void) {
  if (active) return 0;
  for (int i = 0; i < nconns; i++) if (conns[i].state != IDLE) return 0;
  return 1;
}
static int bulk_done(void) { return done_conns == nconns; }
static long long idle_target;
static int idle_opened(void) { return rounds >= idle_target; }

/* Time-driven phase for echo and churn: start every connection, run, drain. */
static double timed_phase(double secs) {
  double t0 = now();
  active = 1;
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    if (c->fd < 0) open_conn(c); else { start_round(c); flush_msg(c); }
  }
  pump(all_idle, t0 + secs);
  return now() - t0;
}
static double bulk_phase(long long bytes) {
  double t0 = now();
  done_conns = 0;
  for (int i = 0; i < nconns; i++) {
    conns[i].total = bytes; conns[i].sent = conns[i].recvd = 0;
    conns[i].state = SENDING; watch(&conns[i], EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);
  }
  pump(bulk_done, 0);
  return now() - t0;
}
/* Opens conns[from..to) keeping at most 64 handshakes/echoes in flight, so the
 * server's listen backlog never overflows (a dropped SYN costs a 1 s retry). */
static double idle_phase(int from, int to) {
  double t0 = now();
  long long r0 = rounds;
  active = 0;
  for (int i = from; i < to; i++) {
    idle_target = r0 + (i - from) - 63;
    pump(idle_opened, 0);
    open_conn(&conns[i]);
  }
  idle_target = r0 + (to - from);
  pump(idle_opened, 0);
  return now() - t0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: loadgen echo|churn|bulk|idle PORT [-n N] [-t S] [-m MIB]\n"); return 2; }
  scenario = argv[1]; port = atoi(argv[2]);
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-n")) nconns = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-t")) seconds = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "-m")) mib = atoll(argv[i + 1]);
    else die("unknown option %s", argv[i]);
  }
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl); rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl);
  srand(12345);
  for (int i = 0; i < PRIME + CHUNK; i++)  /* pattern[k] == pattern[k % PRIME] */
    pattern[i] = i < PRIME ? (unsigned char)(rand() >> 7) : pattern[i - PRIME];
  epfd = epoll_create1(0);
  int warm = !strcmp(scenario, "idle") ? 50 : nconns;
  conns = calloc(nconns > warm ? nconns : warm, sizeof *conns);
  for (int i = 0; i < (nconns > warm ? nconns : warm); i++) { conns[i].fd = -1; conns[i].id = i; }
  int is_echo = !strcmp(scenario, "echo"), is_churn = !strcmp(scenario, "churn");
  int is_bulk = !strcmp(scenario, "bulk"), is_idle = !strcmp(scenario, "idle");
  if (!(is_echo || is_churn || is_bulk || is_idle)) die("unknown scenario");

  /* warm-up: the same work on a small scale, so first-use costs stay out */
  if (is_echo || is_churn) timed_phase(0.3);
  if (is_bulk) {
    for (int i = 0; i < nconns; i++) open_conn(&conns[i]);
    pump(all_idle, 0); bulk_phase(1 << 20);
  }
  if (is_idle) {
    int n = nconns; nconns = warm; idle_phase(0, warm);
    for (int i = 0; i < warm; i++) close_conn(&conns[i]);
    nconns = n;
  }
  usleep(200000);  /* let the server finish closing warm-up connections */
  printf("ready\n"); fflush(stdout);
  wait_line();

  long long r0 = rounds;
  double secs;
  if (is_bulk) secs = bulk_phase(mib << 20);
  else if (is_idle) secs = idle_phase(0, nconns);
  else secs = timed_phase(seconds);
  usleep(is_echo ? 20000 : 200000);  /* server finishes its last closes/accepts */
  if (is_echo) {  /* nothing may arrive once the rounds are over */
    struct epoll_event ev;
    if (epoll_wait(epfd, &ev, 1, 0) > 0) die("unexpected bytes after the last round");
  }
  long long bytes = is_bulk ? (long long)nconns * (mib << 20) : (rounds - r0) * MSG;
  printf("{\"scenario\": \"%s\", \"conns\": %d, \"rounds\": %lld, \"bytes\": %lld, "
         "\"seconds\": %.6f}\n", scenario, nconns, rounds - r0, bytes, secs);
  fflush(stdout);
  wait_line();
  for (int i = 0; i < nconns; i++) if (conns[i].fd >= 0) close(conns[i].fd);
  return 0;
}
