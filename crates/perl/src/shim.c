/*
 * The C side of liege-perl: the one Perl interpreter of the process, and everything that needs
 * Perl's macros (the PSGI env, the response, psgi.input, the streaming writer). Rust calls the
 * functions named liege_perl_*; this file calls back into Rust only through the callback table
 * handed to liege_perl_init, and never longjmps (croak/die) across a Rust frame: every request
 * runs inside one call_sv(G_EVAL) of the XSUB `Liege::_handle`, so a die anywhere below it
 * (the app, a body's getline, a header the runtime refused) ends at that eval.
 */
#define PERL_NO_GET_CONTEXT
#include <EXTERN.h>
#include <perl.h>
#include <XSUB.h>

#include <stdint.h>
#include <string.h>

/* A byte string lent across the boundary (valid until the next Perl operation). */
typedef struct {
    const char *ptr;
    size_t len;
} liege_str;

/* One CGI variable of the request; `known` is the index of its name in the known-names list
 * given to liege_perl_init, or -1. */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    ptrdiff_t known;
} liege_var;

/* What C calls in Rust. Each returns 0 on success and -1 on failure, after which
 * `last_error` gives the message; `ctx` is the pointer given to liege_perl_call. */
typedef struct {
    /* Starts the response: status code and `n` name/value pairs (2n strings). */
    int (*start)(void *ctx, int64_t status, const liege_str *headers, size_t n);
    /* Sends body pieces; `last` means they are the whole body. */
    int (*write)(void *ctx, const liege_str *parts, size_t n, int last);
    /* Sends a descriptor's file from `offset` with sendfile (the descriptor is lent): 1 sent,
     * 0 not a regular file (nothing sent), -1 failed. */
    int (*send_fd)(void *ctx, int fd, int64_t offset);
    /* Sends the file at `path` whole: 1 sent, 0 not a regular file, -1 failed. */
    int (*send_path)(void *ctx, const char *path, size_t len);
    /* Reads up to `len` body bytes into `buf`: the count (0 at the end), or -1. */
    int64_t (*input_read)(void *ctx, char *buf, size_t len);
    /* Moves the body's read position (whence 0, 1, 2): the new position, or -1. */
    int64_t (*input_seek)(void *ctx, int64_t offset, int whence);
    /* Whether the response was started. */
    int (*started)(void *ctx);
    /* The message of the last failure. */
    liege_str (*last_error)(void *ctx);
} liege_callbacks;

static PerlInterpreter *my_perl;
static liege_callbacks cb;

/* Made once. */
static SV **known_keys;
static size_t known_count;
static SV *k_version, *k_url_scheme, *k_input, *k_errors, *k_multithread, *k_multiprocess,
    *k_run_once, *k_nonblocking, *k_streaming, *k_buffered, *k_harakiri, *k_harakiri_commit,
    *k_script_name, *k_path_info, *k_query_string;
static SV *version_rv, *errors_obj, *s_http, *s_https, *s_empty;
static HV *input_stash, *writer_stash;
static CV *handle_cv, *responder_maker;

/* The request being served. */
static struct {
    void *ctx;
    UV gen;
    SV *app;
    const liege_var *vars;
    size_t nvars;
    int https;
    int responded;
    int harakiri;
} cur;

EXTERN_C void boot_DynaLoader(pTHX_ CV *cv);

static void xs_init(pTHX) {
    newXS("DynaLoader::boot_DynaLoader", boot_DynaLoader, __FILE__);
}

/* Croaks with the message of the callback that failed. */
static void croak_last(pTHX_ const char *what) {
    liege_str e = cb.last_error(cur.ctx);
    croak("%s: %.*s\n", what, (int)e.len, e.ptr);
}

/* The generation an object was made for (psgi.input, a writer): 0 when it is stale. */
static UV object_gen(pTHX_ SV *self, const char *cls) {
    if (!SvROK(self) || !sv_isobject(self))
        croak("%s method called on something that is not a %s object", cls, cls);
    return SvUV(SvRV(self));
}

static void need_current(pTHX_ SV *self, const char *cls) {
    UV gen = object_gen(aTHX_ self, cls);
    if (!cur.ctx || gen != cur.gen)
        croak("%s used after its request ended", cls);
}

/* psgi.input->read($buf, $len [, $offset]) */
XS(xs_input_read) {
    dXSARGS;
    if (items < 3 || items > 4)
        croak_xs_usage(cv, "input, buf, len [, offset]");
    need_current(aTHX_ ST(0), "psgi.input");
    SV *buf = ST(1);
    IV len = SvIV(ST(2));
    IV off = items > 3 ? SvIV(ST(3)) : 0;
    if (len < 0)
        croak("psgi.input->read: negative length %" IVdf, len);
    if (SvREADONLY(buf))
        croak("psgi.input->read: the buffer is read-only");
    STRLEN cur_len = 0;
    if (!SvOK(buf))
        sv_setpvs(buf, "");
    (void)SvPVbyte_force(buf, cur_len);
    if (off < 0) {
        if ((STRLEN)(-off) > cur_len)
            croak("psgi.input->read: offset %" IVdf " is outside the buffer", off);
        off += (IV)cur_len;
    }
    char *dst = SvGROW(buf, (STRLEN)off + (STRLEN)len + 1);
    if ((STRLEN)off > cur_len)
        memset(dst + cur_len, 0, (STRLEN)off - cur_len);
    int64_t got = cb.input_read(cur.ctx, dst + off, (size_t)len);
    if (got < 0)
        croak_last(aTHX_ "psgi.input->read");
    SvCUR_set(buf, (STRLEN)off + (STRLEN)got);
    *SvEND(buf) = '\0';
    SvPOK_only(buf);
    SvSETMAGIC(buf);
    XSRETURN_IV((IV)got);
}

/* psgi.input->seek($pos [, $whence]) */
XS(xs_input_seek) {
    dXSARGS;
    if (items < 2 || items > 3)
        croak_xs_usage(cv, "input, pos [, whence]");
    need_current(aTHX_ ST(0), "psgi.input");
    IV pos = SvIV(ST(1));
    IV whence = items > 2 ? SvIV(ST(2)) : 0;
    if (whence < 0 || whence > 2)
        croak("psgi.input->seek: whence %" IVdf " is not 0, 1 or 2", whence);
    int64_t at = cb.input_seek(cur.ctx, (int64_t)pos, (int)whence);
    if (at < 0)
        croak_last(aTHX_ "psgi.input->seek");
    XSRETURN_YES;
}

/* psgi.input->tell */
XS(xs_input_tell) {
    dXSARGS;
    if (items != 1)
        croak_xs_usage(cv, "input");
    need_current(aTHX_ ST(0), "psgi.input");
    int64_t at = cb.input_seek(cur.ctx, 0, 1);
    if (at < 0)
        croak_last(aTHX_ "psgi.input->tell");
    XSRETURN_IV((IV)at);
}

/* $writer->write($data) */
XS(xs_writer_write) {
    dXSARGS;
    if (items != 2)
        croak_xs_usage(cv, "writer, data");
    need_current(aTHX_ ST(0), "the PSGI writer");
    STRLEN len;
    const char *p = SvPVbyte(ST(1), len);
    liege_str part = {p, len};
    if (len > 0 && cb.write(cur.ctx, &part, 1, 0) < 0)
        croak_last(aTHX_ "the PSGI writer's write");
    XSRETURN_YES;
}

/* $writer->close: later writes fail; the runtime ends the response when the request returns. */
XS(xs_writer_close) {
    dXSARGS;
    if (items != 1)
        croak_xs_usage(cv, "writer");
    (void)object_gen(aTHX_ ST(0), "the PSGI writer");
    sv_setuv(SvRV(ST(0)), 0);
    XSRETURN_YES;
}

static SV *new_object(pTHX_ HV *stash) {
    return sv_bless(sv_2mortal(newRV_noinc(newSVuv(cur.gen))), stash);
}

/* Calls `$obj->$method` in scalar context; the result is mortal. */
static SV *call_method_scalar(pTHX_ SV *obj, const char *method) {
    dSP;
    PUSHMARK(SP);
    XPUSHs(obj);
    PUTBACK;
    int n = call_method(method, G_SCALAR);
    SPAGAIN;
    SV *r = n > 0 ? POPs : &PL_sv_undef;
    PUTBACK;
    return r;
}

static void call_close(pTHX_ SV *body) {
    dSP;
    PUSHMARK(SP);
    XPUSHs(body);
    PUTBACK;
    call_method("close", G_DISCARD);
}

static int can(pTHX_ SV *obj, const char *method) {
    if (!sv_isobject(obj))
        return 0;
    HV *stash = SvSTASH(SvRV(obj));
    return gv_fetchmethod_autoload(stash, method, FALSE) != NULL;
}

/* Sends a filehandle-like body: by sendfile when it is a real file (or says its `path`), else
 * by getline until undef; then closes it. */
static void send_handle(pTHX_ SV *body) {
    int sent = 0;
    SV *inner = SvROK(body) ? SvRV(body) : NULL;
    if (inner && (SvTYPE(inner) == SVt_PVGV || SvTYPE(inner) == SVt_PVIO)) {
        IO *io = sv_2io(body);
        PerlIO *fp = io ? IoIFP(io) : NULL;
        int fd = fp ? PerlIO_fileno(fp) : -1;
        if (fd >= 0) {
            Off_t at = PerlIO_tell(fp);
            int r = cb.send_fd(cur.ctx, fd, at < 0 ? 0 : (int64_t)at);
            if (r < 0)
                croak_last(aTHX_ "sending the response body file");
            sent = r;
        }
    }
    if (!sent && can(aTHX_ body, "path")) {
        SV *path = call_method_scalar(aTHX_ body, "path");
        if (SvOK(path)) {
            STRLEN len;
            const char *p = SvPVbyte(path, len);
            int r = cb.send_path(cur.ctx, p, len);
            if (r < 0)
                croak_last(aTHX_ "sending the response body file");
            sent = r;
        }
    }
    if (!sent) {
        /* Liege::_lines reads with getline (local $/ = \65536, as Plack::Util::foreach) and
         * closes the body itself. */
        dSP;
        PUSHMARK(SP);
        XPUSHs(body);
        XPUSHs(new_object(aTHX_ writer_stash));
        PUTBACK;
        call_pv("Liege::_lines", G_DISCARD);
        return;
    }
    call_close(aTHX_ body);
}

/* The body of a three-element response. */
static void send_body(pTHX_ SV *body) {
    SvGETMAGIC(body);
    if (SvROK(body) && SvTYPE(SvRV(body)) == SVt_PVAV && !sv_isobject(body)) {
        AV *av = (AV *)SvRV(body);
        SSize_t n = av_count(av);
        liege_str one[8];
        liege_str *parts = one;
        if (n > 8)
            Newx(parts, n, liege_str), SAVEFREEPV(parts);
        size_t k = 0;
        for (SSize_t i = 0; i < n; i++) {
            SV **e = av_fetch(av, i, 0);
            if (!e || !SvOK(*e))
                continue;
            STRLEN len;
            const char *p = SvPVbyte(*e, len);
            if (len == 0)
                continue;
            parts[k].ptr = p;
            parts[k].len = len;
            k++;
        }
        if (cb.write(cur.ctx, parts, k, 1) < 0)
            croak_last(aTHX_ "sending the response body");
        return;
    }
    if (SvROK(body) && (sv_isobject(body) || SvTYPE(SvRV(body)) == SVt_PVGV ||
                        SvTYPE(SvRV(body)) == SVt_PVIO)) {
        send_handle(aTHX_ body);
        return;
    }
    croak("the response body is neither an array reference nor a filehandle-like object "
          "(it is `%" SVf "`)\n",
          SVfARG(body));
}

/* Starts the response from [status, headers(, body)]; returns the array. */
static AV *start(pTHX_ SV *res, int streaming) {
    if (cur.responded)
        croak("the response was already given (the responder was called twice?)\n");
    if (!SvROK(res) || SvTYPE(SvRV(res)) != SVt_PVAV)
        croak("the app's response is not an array reference [status, headers, body] "
              "(it is `%" SVf "`)\n",
              SVfARG(res));
    AV *av = (AV *)SvRV(res);
    SSize_t n = av_count(av);
    if (n != 3 && !(streaming && n == 2))
        croak("the app's response has %d elements, not %s\n", (int)n,
              streaming ? "2 ([status, headers]) or 3 ([status, headers, body])"
                        : "3 ([status, headers, body])");
    SV **status = av_fetch(av, 0, 0);
    if (!status || !looks_like_number(*status))
        croak("the response status `%" SVf "` is not a number\n",
              SVfARG(status ? *status : &PL_sv_undef));
    SV **headers = av_fetch(av, 1, 0);
    if (!headers || !SvROK(*headers) || SvTYPE(SvRV(*headers)) != SVt_PVAV)
        croak("the response headers are not an array reference\n");
    AV *hav = (AV *)SvRV(*headers);
    SSize_t hn = av_count(hav);
    if (hn % 2)
        croak("the response headers have an odd number of elements (%d): they are name, "
              "value pairs\n",
              (int)hn);
    liege_str one[32];
    liege_str *strs = one;
    if (hn > 32)
        Newx(strs, hn, liege_str), SAVEFREEPV(strs);
    for (SSize_t i = 0; i < hn; i++) {
        SV **e = av_fetch(hav, i, 0);
        STRLEN len = 0;
        const char *p = "";
        if (e && SvOK(*e))
            p = SvPVbyte(*e, len);
        strs[i].ptr = p;
        strs[i].len = len;
    }
    cur.responded = 1;
    if (cb.start(cur.ctx, (int64_t)SvIV(*status), strs, (size_t)hn / 2) < 0)
        croak_last(aTHX_ "the response head was refused");
    return av;
}

/* Liege::_respond($gen, $res): the responder of a delayed response. */
XS(xs_respond) {
    dXSARGS;
    if (items != 2)
        croak_xs_usage(cv, "gen, res");
    if (!cur.ctx || SvUV(ST(0)) != cur.gen)
        croak("the PSGI responder was called after its request ended\n");
    AV *av = start(aTHX_ ST(1), 1);
    if (av_count(av) == 2) {
        ST(0) = new_object(aTHX_ writer_stash);
        XSRETURN(1);
    }
    send_body(aTHX_ *av_fetch(av, 2, 0));
    XSRETURN_EMPTY;
}

static SV *flag(pTHX_ int yes) {
    return newSVsv(yes ? &PL_sv_yes : &PL_sv_no);
}

/* Builds the env, calls the app, sends its response. Runs under the G_EVAL of liege_perl_call. */
XS(xs_handle) {
    dXSARGS;
    PERL_UNUSED_VAR(items);
    HV *env = newHV();
    SV *env_rv = sv_2mortal(newRV_noinc((SV *)env));
    hv_ksplit(env, cur.nvars + 16);
    int seen_script = 0, seen_path = 0, seen_query = 0;
    for (size_t i = 0; i < cur.nvars; i++) {
        const liege_var *v = &cur.vars[i];
        SV *value = newSVpvn(v->value, v->value_len);
        if (v->known >= 0 && (size_t)v->known < known_count) {
            SV *key = known_keys[v->known];
            if (key == k_script_name)
                seen_script = 1;
            else if (key == k_path_info)
                seen_path = 1;
            else if (key == k_query_string)
                seen_query = 1;
            (void)hv_store_ent(env, key, value, 0);
        } else {
            (void)hv_store(env, v->key, (I32)v->key_len, value, 0);
        }
    }
    if (!seen_script)
        (void)hv_store_ent(env, k_script_name, newSVsv(s_empty), 0);
    if (!seen_path)
        (void)hv_store_ent(env, k_path_info, newSVsv(s_empty), 0);
    if (!seen_query)
        (void)hv_store_ent(env, k_query_string, newSVsv(s_empty), 0);
    (void)hv_store_ent(env, k_version, newSVsv(version_rv), 0);
    (void)hv_store_ent(env, k_url_scheme, newSVsv(cur.https ? s_https : s_http), 0);
    (void)hv_store_ent(env, k_input, SvREFCNT_inc(new_object(aTHX_ input_stash)), 0);
    (void)hv_store_ent(env, k_errors, newSVsv(errors_obj), 0);
    (void)hv_store_ent(env, k_multithread, flag(aTHX_ 0), 0);
    (void)hv_store_ent(env, k_multiprocess, flag(aTHX_ 1), 0);
    (void)hv_store_ent(env, k_run_once, flag(aTHX_ 0), 0);
    (void)hv_store_ent(env, k_nonblocking, flag(aTHX_ 0), 0);
    (void)hv_store_ent(env, k_streaming, flag(aTHX_ 1), 0);
    (void)hv_store_ent(env, k_buffered, flag(aTHX_ 1), 0);
    (void)hv_store_ent(env, k_harakiri, flag(aTHX_ 1), 0);

    SP = MARK;
    PUSHMARK(SP);
    XPUSHs(env_rv);
    PUTBACK;
    int n = call_sv(cur.app, G_SCALAR);
    SPAGAIN;
    SV *res = n > 0 ? POPs : &PL_sv_undef;
    PUTBACK;
    SvREFCNT_inc_simple_void(res);
    sv_2mortal(res);

    if (SvROK(res) && SvTYPE(SvRV(res)) == SVt_PVCV) {
        SV *gen = sv_2mortal(newSVuv(cur.gen));
        SPAGAIN;
        PUSHMARK(SP);
        XPUSHs(gen);
        PUTBACK;
        n = call_sv((SV *)responder_maker, G_SCALAR);
        SPAGAIN;
        SV *responder = n > 0 ? POPs : &PL_sv_undef;
        SvREFCNT_inc_simple_void(responder);
        sv_2mortal(responder);
        PUSHMARK(SP);
        XPUSHs(responder);
        PUTBACK;
        call_sv(res, G_DISCARD);
        if (!cur.responded)
            croak("the delayed response returned without calling its responder\n");
    } else {
        AV *av = start(aTHX_ res, 0);
        send_body(aTHX_ *av_fetch(av, 2, 0));
    }
    HE *commit = hv_fetch_ent(env, k_harakiri_commit, 0, 0);
    if (commit && SvTRUE(HeVAL(commit)))
        cur.harakiri = 1;
    XSRETURN_EMPTY;
}

/* Perl code run once at start: the objects' pure-Perl methods, and the loader. */
static const char prelude[] =
    "package Liege::Errors;\n"
    /* One write(2) per call, so the lines of several workers never mix. */
    "sub print {\n"
    "  my $s = shift;\n"
    "  my $line = join(defined $, ? $, : '', @_) . (defined $\\ ? $\\ : '');\n"
    "  local ($,, $\\);\n"
    "  print STDERR $line;\n"
    "}\n"
    "sub printf { my $s = shift; my $f = shift; $s->print(sprintf($f, @_)) }\n"
    "sub flush { 1 }\n"
    "sub close { 1 }\n"
    "package Liege::Input;\n"
    "sub close { 1 }\n"
    "package Liege::Writer;\n"
    "sub poll_cb { my ($s, $cb) = @_; $cb->($s) }\n"
    "package Liege;\n"
    "sub _lines {\n"
    "  my ($body, $w) = @_;\n"
    "  local $/ = \\65536 unless ref $/;\n"
    "  while (defined(my $l = $body->getline)) { $w->write($l) if length $l }\n"
    "  $body->close;\n"
    "}\n"
    "sub _responder { my $g = shift; sub { Liege::_respond($g, $_[0]) } }\n"
    /* Plack::Util::load_psgi, without Plack: `do FILE` in a package of its own. */
    "sub _load {\n"
    "  my ($_file, @args) = @_;\n"
    "  $_file = File::Spec->rel2abs($_file);\n"
    "  my $_package = $_file;\n"
    "  $_package =~ s/([^A-Za-z0-9_])/sprintf('_%2x', unpack('C', $1))/eg;\n"
    "  local $0 = $_file;\n"
    "  @ARGV = @args;\n"
    "  my $app = eval sprintf(<<'END_EVAL', $_package);\n"
    "package Liege::Sandbox::%s;\n"
    "{\n"
    "  my $app = do $_file;\n"
    "  if (!$app && (my $error = $@ || $!)) { die $error; }\n"
    "  $app;\n"
    "}\n"
    "END_EVAL\n"
    "  die $@ if $@;\n"
    "  die \"its last statement is not a code reference (it is `\" . (defined $app ? $app : 'undef') . \"`)\\n\"\n"
    "    unless ref $app eq 'CODE' || (Scalar::Util::blessed($app) && overload::Method($app, '&{}'));\n"
    "  return $app;\n"
    "}\n"
    "require Scalar::Util; require overload; require File::Spec;\n"
    "$0 = 'liege-perl';\n"
    "1;\n";

static SV *shared_key(pTHX_ const char *name) {
    return newSVpvn_share(name, (I32)strlen(name), 0);
}

/* Starts the interpreter, once per process. `known` lists the CGI names the env gets shared keys
 * for. Returns 0, or -1 with the error in `err`. */
int liege_perl_init(const liege_callbacks *callbacks, const liege_str *known, size_t nknown,
                    liege_str *err) {
    static char *args[] = {"liege-perl", "-e", "0", NULL};
    static char *empty_env[] = {NULL};
    int argc = 3;
    char **argv = args;
    char **env = empty_env;
    cb = *callbacks;
    PERL_SYS_INIT3(&argc, &argv, &env);
    my_perl = perl_alloc();
    if (!my_perl) {
        err->ptr = "perl_alloc failed";
        err->len = strlen(err->ptr);
        return -1;
    }
    PERL_SET_CONTEXT(my_perl);
    perl_construct(my_perl);
    PL_exit_flags |= PERL_EXIT_DESTRUCT_END;
    PL_origalen = 1; /* never let $0 overwrite argv */
    if (perl_parse(my_perl, xs_init, argc, argv, NULL) != 0 || perl_run(my_perl) != 0) {
        err->ptr = "perl_parse failed";
        err->len = strlen(err->ptr);
        return -1;
    }
    known_keys = (SV **)calloc(nknown, sizeof(SV *));
    known_count = nknown;
    for (size_t i = 0; i < nknown; i++) {
        known_keys[i] = newSVpvn_share(known[i].ptr, (I32)known[i].len, 0);
        if (known[i].len == 11 && memcmp(known[i].ptr, "SCRIPT_NAME", 11) == 0)
            k_script_name = known_keys[i];
        else if (known[i].len == 9 && memcmp(known[i].ptr, "PATH_INFO", 9) == 0)
            k_path_info = known_keys[i];
        else if (known[i].len == 12 && memcmp(known[i].ptr, "QUERY_STRING", 12) == 0)
            k_query_string = known_keys[i];
    }
    if (!k_script_name)
        k_script_name = shared_key(aTHX_ "SCRIPT_NAME");
    if (!k_path_info)
        k_path_info = shared_key(aTHX_ "PATH_INFO");
    if (!k_query_string)
        k_query_string = shared_key(aTHX_ "QUERY_STRING");
    k_version = shared_key(aTHX_ "psgi.version");
    k_url_scheme = shared_key(aTHX_ "psgi.url_scheme");
    k_input = shared_key(aTHX_ "psgi.input");
    k_errors = shared_key(aTHX_ "psgi.errors");
    k_multithread = shared_key(aTHX_ "psgi.multithread");
    k_multiprocess = shared_key(aTHX_ "psgi.multiprocess");
    k_run_once = shared_key(aTHX_ "psgi.run_once");
    k_nonblocking = shared_key(aTHX_ "psgi.nonblocking");
    k_streaming = shared_key(aTHX_ "psgi.streaming");
    k_buffered = shared_key(aTHX_ "psgix.input.buffered");
    k_harakiri = shared_key(aTHX_ "psgix.harakiri");
    k_harakiri_commit = shared_key(aTHX_ "psgix.harakiri.commit");

    newXS("Liege::Input::read", xs_input_read, __FILE__);
    newXS("Liege::Input::seek", xs_input_seek, __FILE__);
    newXS("Liege::Input::tell", xs_input_tell, __FILE__);
    newXS("Liege::Writer::write", xs_writer_write, __FILE__);
    newXS("Liege::Writer::close", xs_writer_close, __FILE__);
    newXS("Liege::_respond", xs_respond, __FILE__);
    handle_cv = newXS("Liege::_handle", xs_handle, __FILE__);

    eval_pv(prelude, FALSE);
    if (SvTRUE(ERRSV)) {
        STRLEN len;
        err->ptr = SvPV(ERRSV, len);
        err->len = len;
        return -1;
    }
    responder_maker = get_cv("Liege::_responder", 0);
    input_stash = gv_stashpvs("Liege::Input", GV_ADD);
    writer_stash = gv_stashpvs("Liege::Writer", GV_ADD);
    AV *version = newAV();
    av_push(version, newSViv(1));
    av_push(version, newSViv(1));
    version_rv = newRV_noinc((SV *)version);
    errors_obj = sv_bless(newRV_noinc(newSViv(0)), gv_stashpvs("Liege::Errors", GV_ADD));
    s_http = newSVpvn_share("http", 4, 0);
    s_https = newSVpvn_share("https", 5, 0);
    s_empty = newSVpvn_share("", 0, 0);
    return 0;
}

/* Runs `code` (a Perl statement list) and returns 0, or -1 with $@ in `err`. */
int liege_perl_eval(const char *code, liege_str *err) {
    PERL_SET_CONTEXT(my_perl);
    eval_pv(code, FALSE);
    if (SvTRUE(ERRSV)) {
        STRLEN len;
        err->ptr = SvPV(ERRSV, len);
        err->len = len;
        return -1;
    }
    return 0;
}

/* Loads a .psgi file (Liege::_load) with @ARGV = args; the app (a new reference), or NULL with
 * the error in `err`. */
SV *liege_perl_load(const char *file, size_t file_len, const liege_str *args, size_t nargs,
                    liege_str *err) {
    PERL_SET_CONTEXT(my_perl);
    dSP;
    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    XPUSHs(sv_2mortal(newSVpvn(file, file_len)));
    for (size_t i = 0; i < nargs; i++)
        XPUSHs(sv_2mortal(newSVpvn(args[i].ptr, args[i].len)));
    PUTBACK;
    int n = call_pv("Liege::_load", G_SCALAR | G_EVAL);
    SPAGAIN;
    SV *app = NULL;
    if (SvTRUE(ERRSV)) {
        STRLEN len;
        err->ptr = SvPV(ERRSV, len);
        err->len = len;
        if (n > 0)
            (void)POPs;
    } else if (n > 0) {
        app = newSVsv(POPs);
    }
    PUTBACK;
    FREETMPS;
    LEAVE;
    return app;
}

/* Serves one request with `app`. Returns 0, or -1 with the error ($@) in `err`; `harakiri` is
 * set when the app set psgix.harakiri.commit. */
int liege_perl_call(SV *app, void *ctx, const liege_var *vars, size_t nvars, int https,
                    int *harakiri, liege_str *err) {
    PERL_SET_CONTEXT(my_perl);
    dSP;
    cur.ctx = ctx;
    cur.gen++;
    cur.app = app;
    cur.vars = vars;
    cur.nvars = nvars;
    cur.https = https;
    cur.responded = 0;
    cur.harakiri = 0;
    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    PUTBACK;
    call_sv((SV *)handle_cv, G_EVAL | G_DISCARD);
    int rc = 0;
    if (SvTRUE(ERRSV)) {
        STRLEN len;
        err->ptr = SvPV(ERRSV, len);
        err->len = len;
        rc = -1;
    }
    FREETMPS;
    LEAVE;
    *harakiri = cur.harakiri;
    cur.ctx = NULL;
    cur.vars = NULL;
    cur.nvars = 0;
    return rc;
}

/* In a worker the zygote forked: a fresh seed for rand(). */
void liege_perl_after_fork(void) {
    PERL_SET_CONTEXT(my_perl);
    PL_srand_called = FALSE;
}
