# Installation layout, `make install` / `make uninstall`, and `make deb`.
#
#   make install   PREFIX=/usr/local DESTDIR=   programs to BINDIR, the shim to LIBDIR,
#                  every man page to MANDIR/manN (N from the file's suffix), examples
#                  to DOCDIR/examples/<program dir>/
#   make uninstall (same PREFIX, DESTDIR) removes exactly those files again
#   make deb       build-deb/opskit_<version>_<arch>.deb (scripts/deb.sh, dpkg-deb)
#
# LIBDIR is the multiarch directory (/usr/lib/x86_64-linux-gnu) for PREFIX=/usr, the
# Debian layout, and PREFIX/lib otherwise. no_excl_open looks for the shim next to
# itself, in ../lib and in ../lib/MULTIARCH, so both layouts work without
# NO_EXCL_OPEN_SHIM; the triplet is compiled in from here so that the search and the
# install can never disagree.

MULTIARCH  := $(shell $(CC) -print-multiarch 2>/dev/null)
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(strip $(if $(and $(filter /usr,$(PREFIX)),$(MULTIARCH)),\
                 $(PREFIX)/lib/$(MULTIARCH),$(PREFIX)/lib))
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/opskit
EXAMPLEDIR ?= $(DOCDIR)/examples

$(OBJ)/no_excl_open/main.o: ALL_CFLAGS += -DNXO_MULTIARCH='"$(MULTIARCH)"'

# Extra names for man pages, as LINK=TARGET relative to MANDIR: `man open_no_excl.so`
# shows no_excl_open(1), which documents the shim and the wrapper together.
MANLINKS += man8/open_no_excl.so.8=man1/no_excl_open.1

# Examples: everything under <program dir>/examples/ (subdirectories kept), plus the
# sample files that predate those directories. Expanded when a recipe runs, so new
# files are picked up without editing this list. dir/examples/a/b is installed as
# EXAMPLEDIR/dir/a/b, dir/file as EXAMPLEDIR/dir/file.
PKG_DIRS      = $(filter-out lib packaging bench fuzz tests,\
                    $(patsubst %/module.mk,%,$(wildcard */module.mk)))
PKG_EXDIRS    = $(wildcard $(addsuffix /examples,$(PKG_DIRS)))
PKG_EXAMPLES  = $(sort $(if $(PKG_EXDIRS),$(shell find $(PKG_EXDIRS) -type f ! -name '.*' \
                    ! -name '*~' ! -name '*.orig' ! -name '*.rej' ! -name '*.swp')) \
                    $(wildcard wsgate/sample-*.txt no_excl_open/*.cron no_excl_open/*.conf \
                    relaxlogs/log-run))

DEPS_PKGS += dpkg-dev fakeroot lintian man-db

.PHONY: install uninstall deb

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)
	@set -e; for p in $(PROGRAMS); do case $$p in \
	  *.so) echo "install $$p $(DESTDIR)$(LIBDIR)/"; install -m 0644 $$p $(DESTDIR)$(LIBDIR)/ ;; \
	  *) echo "install $$p $(DESTDIR)$(BINDIR)/"; install -m 0755 $$p $(DESTDIR)$(BINDIR)/ ;; \
	  esac; done
	@set -e; for m in $(MANPAGES); do d=$(DESTDIR)$(MANDIR)/man$${m##*.}; \
	  echo "install $$m $$d/"; install -d $$d; install -m 0644 $$m $$d/; done
	@set -e; for l in $(MANLINKS); do link=$(DESTDIR)$(MANDIR)/$${l%%=*}; \
	  target=../$${l#*=}; echo "ln -s $$target $$link"; \
	  install -d $$(dirname $$link); ln -sfn $$target $$link; done
	@set -e; for f in $(PKG_EXAMPLES); do d=$${f%%/*}; r=$${f#*/}; \
	  t=$(DESTDIR)$(EXAMPLEDIR)/$$d/$${r#examples/}; echo "install $$f $$t"; \
	  install -D -m $$(if [ -x $$f ]; then echo 0755; else echo 0644; fi) $$f $$t; done

# Removes the files install puts there (same lists), then the directories that are
# opskit's own (the examples tree, DOCDIR) once empty; shared ones (bin, lib, man1)
# stay.
uninstall:
	@set -e; for p in $(PROGRAMS); do n=$${p##*/}; case $$n in \
	  *.so) f=$(DESTDIR)$(LIBDIR)/$$n ;; *) f=$(DESTDIR)$(BINDIR)/$$n ;; esac; \
	  echo "rm -f $$f"; rm -f $$f; done
	@set -e; for m in $(MANPAGES); do f=$(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; \
	  echo "rm -f $$f"; rm -f $$f; done
	@set -e; for l in $(MANLINKS); do f=$(DESTDIR)$(MANDIR)/$${l%%=*}; \
	  echo "rm -f $$f"; rm -f $$f; done
	@set -e; for f in $(PKG_EXAMPLES); do d=$${f%%/*}; r=$${f#*/}; \
	  t=$(DESTDIR)$(EXAMPLEDIR)/$$d/$${r#examples/}; echo "rm -f $$t"; rm -f $$t; done
	@if [ -d $(DESTDIR)$(EXAMPLEDIR) ]; then \
	  find $(DESTDIR)$(EXAMPLEDIR) -depth -type d -empty -exec rmdir {} \; ; fi
	@if [ -d $(DESTDIR)$(DOCDIR) ]; then rmdir --ignore-fail-on-non-empty $(DESTDIR)$(DOCDIR); fi

# make deb: the programs are built again in DEB_BUILD with Debian's hardening flags
# (dpkg-buildflags, bindnow included), then scripts/deb.sh stages, checks and packs.
DEB_BUILD ?= build-deb
DEB_FLAGS  = DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
deb:
	$(MAKE) BUILD=$(DEB_BUILD) CFLAGS="$$($(DEB_FLAGS) CFLAGS) $$($(DEB_FLAGS) CPPFLAGS)" \
	    LDFLAGS="$$($(DEB_FLAGS) LDFLAGS)" all
	MAKE="$(MAKE)" scripts/deb.sh $(DEB_BUILD)

clean: clean-deb
clean-deb:
	rm -rf $(DEB_BUILD)
.PHONY: clean-deb

# What install would put where, one NAME=VALUE a line (tests/e2e/test_package.py).
print-install:
	@echo "MULTIARCH=$(MULTIARCH)"; echo "BINDIR=$(BINDIR)"; echo "LIBDIR=$(LIBDIR)"
	@echo "MANDIR=$(MANDIR)"; echo "DOCDIR=$(DOCDIR)"; echo "EXAMPLEDIR=$(EXAMPLEDIR)"
	@echo "PROGRAMS=$(notdir $(PROGRAMS))"; echo "MANPAGES=$(MANPAGES)"
	@echo "MANLINKS=$(MANLINKS)"; echo "EXAMPLES=$(PKG_EXAMPLES)"
.PHONY: print-install
