/*
 * liege-ruby's C side: every call into libruby happens here, each under rb_protect, so a Ruby
 * exception (a longjmp) never crosses a Rust frame. Rust calls the liege_rb_* functions below
 * (src/ffi.rs declares them); a response goes back to Rust through the callbacks of
 * struct liege_sink, which never raise: they return non-zero, and this side raises Liege::Abort
 * to unwind the app's frames (a subclass of Exception, so an app's `rescue => e` lets it by).
 *
 * Everything here runs on the thread that started Ruby (Rust checks it): Ruby's GC scans that
 * thread's stack for the VALUEs these functions hold.
 */

#include <ruby.h>
#include <ruby/encoding.h>
#include <ruby/io.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef void (*liege_text_fn)(void *ctx, const char *p, size_t n);

/* One CGI variable; `key` is a frozen key made by liege_rb_keys, or 0 (Qfalse): make one. */
struct liege_var {
    VALUE key;
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct liege_request {
    const struct liege_var *vars;
    size_t nvars;
    int https;
    /* A body in memory (NULL when empty), or in a file read from offset 0 (`body_fd` >= 0, not
     * closed here: it is dup'ed). */
    const char *body;
    size_t body_len;
    int body_fd;
    /* A HEAD request: the body is closed, never iterated (Rack::Lint and Puma's way). */
    int head;
};

/* Where the response goes. Each callback returns 0, or non-zero when it failed (it recorded why;
 * send_path returns 1 when the file cannot be opened and the body's `each` must be used). */
struct liege_sink {
    void *ctx;
    int (*header)(void *ctx, const char *name, size_t name_len, const char *value,
                  size_t value_len);
    int (*start)(void *ctx, long status);
    int (*write)(void *ctx, const char *p, size_t n, int last);
    int (*send_path)(void *ctx, const char *p, size_t n);
    /* An exception's description (class: message, then the backtrace). */
    void (*error)(void *ctx, const char *p, size_t n);
};

/* Arrays of strings up to this total are joined and sent whole (with a Content-Length). */
#define JOIN_LIMIT (1L << 20)

static int started;
static VALUE c_stringio, c_abort;
static VALUE k_version, k_url_scheme, k_input, k_errors, k_multithread, k_multiprocess,
    k_run_once, k_hijack_p;
static VALUE v_version, v_http, v_https, v_errors, v_empty;
static ID id_call, id_each, id_close, id_to_path, id_to_ary, id_message, id_backtrace;

static void text(liege_text_fn fn, void *ctx, const char *s)
{
    fn(ctx, s, strlen(s));
}

/* `require name` through Kernel#require, which RubyGems replaces to find gems (rb_require goes
 * around it). */
static VALUE require(const char *name)
{
    VALUE s = rb_str_new_cstr(name);
    return rb_funcallv(rb_cObject, rb_intern("require"), 1, &s);
}

static VALUE describe_i(VALUE exc)
{
    VALUE s = rb_str_buf_new(256);
    VALUE m = rb_obj_as_string(rb_funcallv(exc, id_message, 0, NULL));
    VALUE bt = rb_funcallv(exc, id_backtrace, 0, NULL);
    rb_str_buf_cat_ascii(s, rb_obj_classname(exc));
    rb_str_buf_cat_ascii(s, ": ");
    rb_str_buf_cat(s, RSTRING_PTR(m), RSTRING_LEN(m));
    if (RB_TYPE_P(bt, T_ARRAY)) {
        for (long i = 0; i < RARRAY_LEN(bt); i++) {
            VALUE line = RARRAY_AREF(bt, i);
            if (RB_TYPE_P(line, T_STRING)) {
                rb_str_buf_cat_ascii(s, "\n\tfrom ");
                rb_str_buf_cat(s, RSTRING_PTR(line), RSTRING_LEN(line));
            }
        }
    }
    return s;
}

/* After rb_protect failed with `state`: hands the exception's description to `fn` (not for
 * Liege::Abort, whose cause Rust recorded), and clears it. Returns whether it was an Abort. */
static int report(int state, liege_text_fn fn, void *ctx)
{
    VALUE exc = rb_errinfo();
    rb_set_errinfo(Qnil);
    if (!RB_TYPE_P(exc, T_OBJECT) || !rb_obj_is_kind_of(exc, rb_eException)) {
        char buf[96];
        snprintf(buf, sizeof buf, "Ruby ended the call with a non-local exit (state %d)", state);
        text(fn, ctx, buf);
        return 0;
    }
    if (c_abort && rb_obj_is_kind_of(exc, c_abort))
        return 1;
    int failed = 0;
    VALUE s = rb_protect(describe_i, exc, &failed);
    if (failed) {
        rb_set_errinfo(Qnil);
        text(fn, ctx, "an exception, which could not be described (its message raised too)");
    } else {
        fn(ctx, RSTRING_PTR(s), (size_t)RSTRING_LEN(s));
    }
    RB_GC_GUARD(s);
    RB_GC_GUARD(exc);
    return 0;
}

static VALUE keep(VALUE v)
{
    rb_gc_register_mark_object(v);
    return v;
}

static VALUE key(const char *s)
{
    return keep(rb_enc_interned_str(s, (long)strlen(s), rb_usascii_encoding()));
}

static VALUE setup_i(VALUE unused)
{
    (void)unused;
    require("stringio");
    c_stringio = rb_const_get(rb_cObject, rb_intern("StringIO"));
    VALUE liege = rb_define_module("Liege");
    c_abort = rb_define_class_under(liege, "Abort", rb_eException);
    id_call = rb_intern("call");
    id_each = rb_intern("each");
    id_close = rb_intern("close");
    id_to_path = rb_intern("to_path");
    id_to_ary = rb_intern("to_ary");
    id_message = rb_intern("message");
    id_backtrace = rb_intern("backtrace");
    k_version = key("rack.version");
    k_url_scheme = key("rack.url_scheme");
    k_input = key("rack.input");
    k_errors = key("rack.errors");
    k_multithread = key("rack.multithread");
    k_multiprocess = key("rack.multiprocess");
    k_run_once = key("rack.run_once");
    k_hijack_p = key("rack.hijack?");
    v_version = keep(rb_obj_freeze(rb_ary_new_from_args(2, INT2FIX(1), INT2FIX(3))));
    v_http = key("http");
    v_https = key("https");
    v_empty = keep(rb_obj_freeze(rb_str_new(NULL, 0)));
    /* rack.errors: an IO of its own on fd 2 (the worker's log), unbuffered, which closing does
     * not close fd 2. */
    VALUE args[2] = {INT2FIX(2), rb_str_new_cstr("w")};
    v_errors = keep(rb_class_new_instance(2, args, rb_cIO));
    rb_funcall(v_errors, rb_intern("autoclose="), 1, Qfalse);
    rb_funcall(v_errors, rb_intern("sync="), 1, Qtrue);
    return Qnil;
}

/* The signals Ruby's setup takes over, given back to their previous actions: the worker
 * runtime handles SIGHUP and SIGTERM itself, and SIGINT and SIGQUIT must end the worker at once
 * (Ruby's handlers only note a signal for its main thread, which sits in liege's event loop). */
static const int kept_signals[] = {SIGINT, SIGHUP, SIGQUIT, SIGTERM, SIGALRM, SIGUSR1, SIGUSR2,
                                   SIGPIPE};
#define N_KEPT (sizeof kept_signals / sizeof kept_signals[0])

/* Starts Ruby (once per process) as `ruby -e 0` would: load path, RubyGems, encodings. */
int liege_rb_start(liege_text_fn err, void *ctx)
{
    if (started)
        return 0;
    static char arg0[] = "liege-ruby", arg1[] = "-e", arg2[] = "0";
    static char *args[] = {arg0, arg1, arg2, NULL};
    int argc = 3;
    char **argv = args;
    struct sigaction saved[N_KEPT];
    for (size_t i = 0; i < N_KEPT; i++)
        sigaction(kept_signals[i], NULL, &saved[i]);

    ruby_sysinit(&argc, &argv);
    {
        RUBY_INIT_STACK;
        int state = ruby_setup();
        if (state) {
            char buf[64];
            snprintf(buf, sizeof buf, "ruby_setup failed (state %d)", state);
            text(err, ctx, buf);
            return -1;
        }
        void *node = ruby_options(argc, argv);
        int status = 0;
        if (!ruby_executable_node(node, &status)) {
            char buf[96];
            snprintf(buf, sizeof buf, "ruby_options failed (exit status %d)", status);
            text(err, ctx, buf);
            return -1;
        }
    }
    ruby_script("liege-ruby");
    for (size_t i = 0; i < N_KEPT; i++)
        sigaction(kept_signals[i], &saved[i], NULL);

    int state = 0;
    rb_protect(setup_i, Qnil, &state);
    if (state) {
        report(state, err, ctx);
        return -1;
    }
    started = 1;
    return 0;
}

/* Makes `n` frozen US-ASCII keys, kept alive for good. */
struct keys_args {
    const char *const *names;
    size_t n;
    VALUE *out;
};

static VALUE keys_i(VALUE arg)
{
    struct keys_args *a = (struct keys_args *)arg;
    for (size_t i = 0; i < a->n; i++)
        a->out[i] = key(a->names[i]);
    return Qnil;
}

int liege_rb_keys(const char *const *names, size_t n, VALUE *out)
{
    struct keys_args a = {names, n, out};
    int state = 0;
    rb_protect(keys_i, (VALUE)&a, &state);
    if (state)
        rb_set_errinfo(Qnil);
    return state ? -1 : 0;
}

static VALUE require_i(VALUE name)
{
    return require((const char *)name);
}

int liege_rb_require(const char *name, liege_text_fn err, void *ctx)
{
    int state = 0;
    rb_protect(require_i, (VALUE)name, &state);
    if (state) {
        report(state, err, ctx);
        return -1;
    }
    return 0;
}

struct load_args {
    const char *path;
    VALUE app;
};

/* Rack::Builder.parse_file, as rackup does: `#\` options, the file instance_eval'd in a
 * Builder (`use`, `run`, `map`); Rack 2 answers [app, options], Rack 3 the app. */
static VALUE load_i(VALUE arg)
{
    struct load_args *a = (struct load_args *)arg;
    require("rack");
    VALUE rack = rb_const_get(rb_cObject, rb_intern("Rack"));
    VALUE builder = rb_const_get(rack, rb_intern("Builder"));
    VALUE path = rb_str_new_cstr(a->path);
    VALUE app = rb_funcallv(builder, rb_intern("parse_file"), 1, &path);
    if (RB_TYPE_P(app, T_ARRAY))
        app = rb_ary_entry(app, 0);
    if (!rb_respond_to(app, id_call))
        rb_raise(rb_eTypeError, "the app `%s` gives is a %s, which has no `call`", a->path,
                 rb_obj_classname(app));
    a->app = app;
    return Qnil;
}

int liege_rb_load(const char *path, VALUE *app, liege_text_fn err, void *ctx)
{
    struct load_args a = {path, Qnil};
    int state = 0;
    rb_protect(load_i, (VALUE)&a, &state);
    if (state) {
        report(state, err, ctx);
        return -1;
    }
    *app = keep(a.app);
    return 0;
}

static VALUE gc_i(VALUE unused)
{
    (void)unused;
    rb_gc();
    return Qnil;
}

void liege_rb_gc(void)
{
    int state = 0;
    rb_protect(gc_i, Qnil, &state);
    if (state)
        rb_set_errinfo(Qnil);
}

/* In a worker the zygote just forked (without Ruby's Process.fork): Ruby's thread bookkeeping
 * and random seed, as Ruby's own fork does. */
void liege_rb_after_fork(void)
{
    if (started)
        rb_thread_atfork();
}

/* One request. */
struct call {
    VALUE app;
    const struct liege_request *req;
    const struct liege_sink *sink;
    VALUE input;
    VALUE status, headers, body;
    int answered;
};

NORETURN(static void abort_call(void));
static void abort_call(void)
{
    rb_exc_raise(rb_exc_new_cstr(c_abort, "the response could not be sent"));
}

static VALUE new_input(struct call *c)
{
    const struct liege_request *r = c->req;
    if (r->body_fd >= 0) {
        int fd = rb_cloexec_dup(r->body_fd);
        if (fd < 0)
            rb_sys_fail("dup of the request body's file");
        rb_update_max_fd(fd);
        if (lseek(fd, 0, SEEK_SET) < 0) {
            close(fd);
            rb_sys_fail("lseek in the request body's file");
        }
        VALUE io = rb_io_fdopen(fd, O_RDONLY, NULL);
        c->input = io;
        rb_io_ascii8bit_binmode(io);
        return io;
    }
    VALUE s = r->body_len ? rb_str_new(r->body, (long)r->body_len) : v_empty;
    return rb_class_new_instance(1, &s, c_stringio);
}

static VALUE build_env(struct call *c)
{
    const struct liege_request *r = c->req;
    VALUE env = rb_hash_new();
    for (size_t i = 0; i < r->nvars; i++) {
        const struct liege_var *v = &r->vars[i];
        VALUE k = v->key ? v->key
                         : rb_obj_freeze(rb_usascii_str_new(v->name, (long)v->name_len));
        rb_hash_aset(env, k, rb_str_new(v->value, (long)v->value_len));
    }
    rb_hash_aset(env, k_version, v_version);
    rb_hash_aset(env, k_url_scheme, r->https ? v_https : v_http);
    rb_hash_aset(env, k_input, new_input(c));
    rb_hash_aset(env, k_errors, v_errors);
    rb_hash_aset(env, k_multithread, Qfalse);
    rb_hash_aset(env, k_multiprocess, Qtrue);
    rb_hash_aset(env, k_run_once, Qfalse);
    rb_hash_aset(env, k_hijack_p, Qfalse);
    return env;
}

static VALUE call_i(VALUE arg)
{
    struct call *c = (struct call *)arg;
    VALUE env = build_env(c);
    VALUE ret = rb_funcallv(c->app, id_call, 1, &env);
    VALUE ary = rb_check_array_type(ret);
    if (NIL_P(ary))
        rb_raise(rb_eTypeError, "the app returned a %s, not [status, headers, body]",
                 rb_obj_classname(ret));
    if (RARRAY_LEN(ary) != 3)
        rb_raise(rb_eTypeError, "the app returned an Array of %ld, not [status, headers, body]",
                 RARRAY_LEN(ary));
    c->status = RARRAY_AREF(ary, 0);
    c->headers = RARRAY_AREF(ary, 1);
    c->body = RARRAY_AREF(ary, 2);
    c->answered = 1;
    return Qnil;
}

static void header_value(struct call *c, VALUE name, VALUE value)
{
    if (!RB_TYPE_P(value, T_STRING))
        rb_raise(rb_eTypeError, "the value of response header `%" PRIsVALUE
                 "` is a %s, not a String", name, rb_obj_classname(value));
    const char *p = RSTRING_PTR(value);
    long len = RSTRING_LEN(value);
    const char *n = RSTRING_PTR(name);
    size_t nlen = (size_t)RSTRING_LEN(name);
    /* Rack 2: a value with "\n" is several headers of that name (empty lines dropped). */
    const char *nl = memchr(p, '\n', (size_t)len);
    if (!nl) {
        if (c->sink->header(c->sink->ctx, n, nlen, p, (size_t)len))
            abort_call();
    } else {
        const char *end = p + len;
        while (p < end) {
            nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            if (stop > p && c->sink->header(c->sink->ctx, n, nlen, p, (size_t)(stop - p)))
                abort_call();
            p = stop + 1;
        }
    }
    RB_GC_GUARD(value);
    RB_GC_GUARD(name);
}

static void header(struct call *c, VALUE name, VALUE value)
{
    if (!RB_TYPE_P(name, T_STRING))
        rb_raise(rb_eTypeError, "a response header name is a %s, not a String",
                 rb_obj_classname(name));
    if (RB_TYPE_P(value, T_ARRAY)) {
        /* Rack 3: several values as an Array. */
        for (long i = 0; i < RARRAY_LEN(value); i++)
            header_value(c, name, RARRAY_AREF(value, i));
    } else {
        header_value(c, name, value);
    }
}

static int header_i(VALUE name, VALUE value, VALUE arg)
{
    header((struct call *)arg, name, value);
    return ST_CONTINUE;
}

static VALUE header_b(RB_BLOCK_CALL_FUNC_ARGLIST(pair, arg))
{
    if (argc >= 2) {
        header((struct call *)arg, argv[0], argv[1]);
    } else {
        VALUE a = rb_check_array_type(pair);
        if (NIL_P(a) || RARRAY_LEN(a) != 2)
            rb_raise(rb_eTypeError, "the response headers' each yielded a %s, not a name "
                     "and a value", rb_obj_classname(pair));
        header((struct call *)arg, RARRAY_AREF(a, 0), RARRAY_AREF(a, 1));
    }
    return Qnil;
}

static void chunk(struct call *c, VALUE s, int last)
{
    if (c->sink->write(c->sink->ctx, RSTRING_PTR(s), (size_t)RSTRING_LEN(s), last))
        abort_call();
    RB_GC_GUARD(s);
}

static VALUE not_a_string(VALUE part)
{
    rb_raise(rb_eTypeError, "the response body yielded a %s, not a String",
             rb_obj_classname(part));
    return Qnil;
}

static VALUE body_b(RB_BLOCK_CALL_FUNC_ARGLIST(part, arg))
{
    if (!RB_TYPE_P(part, T_STRING))
        not_a_string(part);
    chunk((struct call *)arg, part, 0);
    return Qnil;
}

/* An Array body: whole (one write, so a Content-Length) when it is strings of at most
 * JOIN_LIMIT bytes in all, else part by part. */
static void send_array(struct call *c, VALUE ary)
{
    long n = RARRAY_LEN(ary), total = 0;
    int whole = 1;
    for (long i = 0; i < n; i++) {
        VALUE e = RARRAY_AREF(ary, i);
        if (!RB_TYPE_P(e, T_STRING))
            not_a_string(e);
        total += RSTRING_LEN(e);
        if (total > JOIN_LIMIT) {
            whole = 0;
            break;
        }
    }
    if (whole) {
        if (n == 1) {
            chunk(c, RARRAY_AREF(ary, 0), 1);
        } else if (n > 1) {
            VALUE joined = rb_str_buf_new(total);
            for (long i = 0; i < n; i++) {
                VALUE e = RARRAY_AREF(ary, i);
                rb_str_buf_cat(joined, RSTRING_PTR(e), RSTRING_LEN(e));
            }
            chunk(c, joined, 1);
        }
        return;
    }
    for (long i = 0; i < RARRAY_LEN(ary); i++) {
        VALUE e = RARRAY_AREF(ary, i);
        if (!RB_TYPE_P(e, T_STRING))
            not_a_string(e);
        chunk(c, e, 0);
    }
}

static VALUE respond_i(VALUE arg)
{
    struct call *c = (struct call *)arg;
    /* Rack 2: the status "parsed as integer (to_i)"; Rack 3: an Integer. Rust checks the range. */
    VALUE st = c->status;
    if (RB_TYPE_P(st, T_STRING))
        st = rb_str_to_inum(st, 10, 0);
    else if (!RB_INTEGER_TYPE_P(st))
        rb_raise(rb_eTypeError, "the response status is a %s, not an Integer",
                 rb_obj_classname(st));
    long code = FIXNUM_P(st) ? FIX2LONG(st) : -1;

    VALUE h = c->headers;
    if (RB_TYPE_P(h, T_HASH))
        rb_hash_foreach(h, header_i, arg);
    else if (rb_respond_to(h, id_each))
        rb_block_call(h, id_each, 0, NULL, header_b, arg);
    else
        rb_raise(rb_eTypeError, "the response headers are a %s, which has no `each`",
                 rb_obj_classname(h));
    if (c->sink->start(c->sink->ctx, code))
        abort_call();

    VALUE body = c->body;
    if (RB_TYPE_P(body, T_ARRAY)) {
        send_array(c, body);
        return Qnil;
    }
    /* HEAD: the head only; a body object is not asked for its content (Rack::Lint refuses a
     * HEAD body that yields anything), only closed. */
    if (c->req->head)
        return Qnil;
    if (rb_respond_to(body, id_to_path)) {
        VALUE path = rb_funcallv(body, id_to_path, 0, NULL);
        StringValue(path);
        int sent = c->sink->send_path(c->sink->ctx, RSTRING_PTR(path), (size_t)RSTRING_LEN(path));
        RB_GC_GUARD(path);
        if (sent == 0)
            return Qnil;
        if (sent < 0)
            abort_call();
        /* The file cannot be opened: the body's each says what to send. */
    } else if (rb_respond_to(body, id_to_ary)) {
        VALUE ary = rb_funcallv(body, id_to_ary, 0, NULL);
        if (RB_TYPE_P(ary, T_ARRAY)) {
            send_array(c, ary);
            return Qnil;
        }
    }
    if (!rb_respond_to(body, id_each))
        rb_raise(rb_eTypeError, "the response body is a %s, which has no `each`",
                 rb_obj_classname(body));
    rb_block_call(body, id_each, 0, NULL, body_b, arg);
    return Qnil;
}

static VALUE close_i(VALUE arg)
{
    struct call *c = (struct call *)arg;
    if (rb_respond_to(c->body, id_close))
        rb_funcallv(c->body, id_close, 0, NULL);
    return Qnil;
}

static VALUE close_input_i(VALUE io)
{
    return rb_funcallv(io, id_close, 0, NULL);
}

/* Serves one request: builds env, calls the app, sends [status, headers, body] through the sink,
 * and calls the body's close (always, once the app answered). Returns 0, or -1 when something
 * failed: the sink's error callback got each Ruby exception, the sink itself recorded its own
 * failures. */
int liege_rb_call(VALUE app, const struct liege_request *req, const struct liege_sink *sink)
{
    struct call c = {app, req, sink, Qnil, Qnil, Qnil, Qnil, 0};
    int state = 0, failed = 0;
    rb_protect(call_i, (VALUE)&c, &state);
    if (state) {
        report(state, sink->error, sink->ctx);
        failed = 1;
    }
    if (c.answered) {
        rb_protect(respond_i, (VALUE)&c, &state);
        if (state) {
            report(state, sink->error, sink->ctx);
            failed = 1;
        }
        state = 0;
        rb_protect(close_i, (VALUE)&c, &state);
        if (state) {
            report(state, sink->error, sink->ctx);
            failed = 1;
        }
    }
    if (!NIL_P(c.input)) {
        state = 0;
        rb_protect(close_input_i, c.input, &state);
        if (state)
            rb_set_errinfo(Qnil);
    }
    RB_GC_GUARD(c.status);
    RB_GC_GUARD(c.headers);
    RB_GC_GUARD(c.body);
    RB_GC_GUARD(c.input);
    return failed ? -1 : 0;
}
