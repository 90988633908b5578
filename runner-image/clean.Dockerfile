# berth/debian-clean:latest: a clean Debian bookworm (minbase + the packages runner-image/build.sh was asked for),
# made offline by runner-image/build.sh (mmdebstrap); for installing berth's .deb in tests.
FROM scratch
ADD rootfs.tar /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
LABEL org.opencontainers.image.title="berth/debian-clean" \
      org.opencontainers.image.description="Debian bookworm minbase and the runtime packages of berth's .deb" \
      berth.image=debian-clean
CMD ["/bin/bash"]
