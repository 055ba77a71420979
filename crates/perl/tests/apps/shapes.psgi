# Every response shape, chosen by PATH_INFO.
use strict;
use warnings;

package Liege::Test::Lines;
sub new { my ($c, @l) = @_; bless { l => [@l], closed => 0 }, $c }
sub getline { my $s = shift; shift @{ $s->{l} } }
sub close { $main::closed++ }

package Liege::Test::WithPath;
sub new { my ($c, $p) = @_; bless { p => $p }, $c }
sub path { $_[0]{p} }
sub getline { die "getline must not be called when path is given\n" }
sub close { $main::closed++ }

package main;
our $closed = 0;
my $file = __FILE__;

my %routes = (
    '/array' => sub { [200, ['Content-Type' => 'text/plain', 'X-Multi' => 'a', 'X-Multi' => 'b'], ['one ', '', 'two ', 3]] },
    '/empty' => sub { [204, [], []] },
    '/lines' => sub { [200, [], Liege::Test::Lines->new("a\n", "bb\n", "", "ccc")] },
    '/memfh' => sub { my $s = "x" x 70000; open my $fh, '<', \$s or die; [200, [], $fh] },
    '/file' => sub { open my $fh, '<', $file or die; my $skip = <$fh>; [200, [], $fh] },
    '/path' => sub { [200, [], Liege::Test::WithPath->new($file)] },
    '/closed' => sub { [200, ['Content-Type' => 'text/plain'], ["closed=$closed"]] },
    '/delayed' => sub { sub { my $r = shift; $r->([201, ['X-Delayed' => 1], ['later']]) } },
    '/stream' => sub {
        sub {
            my $r = shift;
            my $w = $r->([200, ['Content-Type' => 'text/plain']]);
            $w->write("first ");
            $w->write("");
            $w->poll_cb(sub { $_[0]->write("second") });
            $w->close;
        }
    },
    '/write-after-close' => sub {
        sub { my $w = $_[0]->([200, []]); $w->close; $w->write("late"); }
    },
    '/die' => sub { die "the app broke\n" },
    '/die-later' => sub { sub { my $w = $_[0]->([200, []]); $w->write("part"); die "mid-stream\n" } },
    '/no-responder' => sub { sub { 1 } },
    '/twice' => sub { sub { $_[0]->([200, [], ['a']]); $_[0]->([200, [], ['b']]) } },
    '/bad-status' => sub { [42, [], ['x']] },
    '/text-status' => sub { ['200 OK', [], ['x']] },
    '/bad-header' => sub { [200, ['X-Bad' => "a\r\nInjected: 1"], ['x']] },
    '/hop' => sub { [200, ['Connection' => 'close'], ['x']] },
    '/odd' => sub { [200, ['X-One'], ['x']] },
    '/not-array' => sub { "just a string" },
    '/two' => sub { [200, []] },
    '/bad-body' => sub { [200, [], "a string body"] },
    '/wide' => sub { [200, [], ["caf\x{e9} \x{263a}"]] },
    '/length' => sub { [200, ['Content-Length' => 5], ['hello world']] },
);

sub {
    my $env = shift;
    my $route = $routes{ $env->{PATH_INFO} } or return [404, ['Content-Type' => 'text/plain'], ['not found']];
    return $route->();
};
