# berth/busybox:latest: a tiny image for fast tests; the rootfs is made by runner-image/build.sh from busybox-static.
FROM scratch
ADD rootfs.tar /
ENV PATH=/bin
LABEL org.opencontainers.image.title="berth/busybox" \
      org.opencontainers.image.description="busybox-static with /bin/sh and the usual applets, for berth's tests" \
      berth.image=busybox
WORKDIR /mnt/workspace
CMD ["/bin/sh"]
